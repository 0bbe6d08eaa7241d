"""A :class:`~edgeguard.report.summary.Summary` as plain text for a terminal or an email."""

from __future__ import annotations

import datetime as _dt
from collections import Counter

from edgeguard.report.summary import TOP_N, AuditHealth, Summary
from edgeguard.textsafe import escape as printable

__all__ = ["health_line", "local_time", "render_text", "verdict_list"]

#: width of the longest bar in the text chart, in characters
BAR_WIDTH = 40


def local_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return _dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M")


def verdict_list(verdicts: Counter[str]) -> str:
    return ", ".join(f"{v} x{n}" for v, n in verdicts.most_common())


def health_line(h: AuditHealth) -> str:
    chain = "chain verified" if h.chain_ok else f"CHAIN BROKEN ({h.problem})"
    span = f"#{h.first_sequence}..#{h.last_sequence}" if h.records else "no records"
    return (f"{chain}; {h.records} records in {h.segments} segments ({span}); "
            f"{h.checkpoints} checkpoints; {h.lost} records lost; {h.io_errors} I/O errors"
            + (f"; {h.unreadable_lines} unreadable lines" if h.unreadable_lines else ""))


def _chart(summary: Summary) -> list[str]:
    days = summary.days()
    peak = max((sum(c.values()) for c in summary.per_day.values()), default=0)
    lines = []
    for day in days:
        counts = summary.per_day.get(day, Counter())
        total = sum(counts.values())
        bar = "#" * (round(BAR_WIDTH * total / peak) if peak else 0)
        detail = ", ".join(f"{printable(k)} {n}" for k, n in counts.most_common())
        lines.append(f"  {day}  {total:>6}  {bar}{'  ' + detail if detail else ''}")
    return lines or ["  (no findings)"]


def render_text(summary: Summary) -> str:
    s = summary
    out = [f"edgeguard report: {printable(s.directory)}",
           f"From {local_time(s.since)} to {local_time(s.until)} (local time): "
           f"{s.records} records, {s.findings} findings"
           + (" (" + ", ".join(f"{n} {v}" for v, n in s.severities.most_common()) + ")"
              if s.severities else ""),
           "", "Findings per day, by kind"]
    out += _chart(s)
    out += ["", "Top offending hosts"]
    out += [f"  {printable(a):<40} {n} findings" for a, n in s.offenders.most_common(TOP_N)] \
        or ["  (none)"]
    out += ["", "USB media seen, and what was decided"]
    media = sorted(s.media.values(), key=lambda m: -sum(m.verdicts.values()))[:TOP_N]
    out += [f"  {printable(m.device):<40} {verdict_list(m.verdicts)}  "
            f"(last {local_time(m.last_seen)})" for m in media] or ["  (none)"]
    out += ["", f"Blocks made: {len(s.blocks)}"
            + (f", {s.blocks_failed} failed" if s.blocks_failed else "")
            + (f"; {s.would_block} findings in monitor mode would have blocked"
               if s.would_block else "")]
    out += [f"  {local_time(b.when)}  {printable(b.address):<20} "
            f"{printable(b.rule_id or '')}" for b in s.blocks[-TOP_N:]]
    refusals = sum(s.wifi_refusals.values())
    out += ["", f"Wi-Fi refusals: {refusals}"
            + (" (" + ", ".join(f"{printable(k)} {n}" for k, n in s.wifi_refusals.most_common())
               + ")" if refusals else "")]
    out += ["", f"Audit health: {health_line(s.health)}"]
    return "\n".join(out) + "\n"
