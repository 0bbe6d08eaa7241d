"""The numbers of a report, computed in one pass over the trail.

What counts as what:

- a *finding* is an ``alert`` record; the chart counts findings per local day by their
  finding kind (scan, sweep, bittorrent, arp, flood, wifi, usb, kiosk...);
- an *offender* is the source address (or MAC) of a finding;
- *USB media seen* are the media verdict records (``usb-read-only``, ``usb-write-allowed``,
  ``usb-temporary-allow``, ``usb-blocked``) of whole disks (a partition's record repeats
  its disk's decision), grouped by vendor, product and serial;
- a *block made* is a ``block`` action record with outcome success; a failed one is
  counted apart, and a monitor-mode finding that would have blocked is a *would block*;
- a *Wi-Fi refusal* is a ``wifi`` finding (its subtype says why);
- audit health is the verifier's verdict on the whole directory, the checkpoints and
  segment headers in it, and the records the writer says it lost.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.audit.verify import verify_paths
from edgeguard.report.records import TrailRecord, read_trail

__all__ = ["TOP_N", "AuditHealth", "BlockMade", "MediaSeen", "Summary", "summarise",
           "summarise_records"]

#: how many offenders, devices and blocks a report lists
TOP_N = 10
#: the longest chart a report draws, in days (older days are left out of the chart only)
MAX_DAYS = 366
MEDIA_ACTIONS = frozenset({"usb-read-only", "usb-write-allowed", "usb-temporary-allow",
                           "usb-blocked"})
BLOCK_ACTION = "block"
WIFI_KIND = "wifi"


@dataclass(slots=True)
class MediaSeen:
    device: str
    verdicts: Counter[str] = field(default_factory=Counter)
    last_seen: float | None = None


@dataclass(frozen=True, slots=True)
class BlockMade:
    address: str
    when: float | None
    rule_id: str | None
    message: str


@dataclass(slots=True)
class AuditHealth:
    chain_ok: bool = True
    problem: str | None = None
    records: int = 0
    segments: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    checkpoints: int = 0
    segment_headers: int = 0
    lost: int = 0
    io_errors: int = 0
    unreadable_lines: int = 0


@dataclass(slots=True)
class Summary:
    directory: str
    since: float | None
    until: float | None
    records: int = 0  # in the window, bookkeeping records excluded
    findings: int = 0
    per_day: dict[str, Counter[str]] = field(default_factory=dict)
    offenders: Counter[str] = field(default_factory=Counter)
    media: dict[str, MediaSeen] = field(default_factory=dict)
    blocks: list[BlockMade] = field(default_factory=list)
    blocks_failed: int = 0
    would_block: int = 0
    wifi_refusals: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)  # of the findings
    health: AuditHealth = field(default_factory=AuditHealth)

    @property
    def kinds(self) -> list[str]:
        """Finding kinds in the window, most frequent first."""
        total: Counter[str] = Counter()
        for day in self.per_day.values():
            total.update(day)
        return [k for k, _ in total.most_common()]

    def days(self) -> list[str]:
        """Every local day of the window (or of the findings), oldest first, gaps kept."""
        known = sorted(self.per_day)
        first = _day(self.since) if self.since is not None else (known[0] if known else None)
        last = _day(self.until - 1) if self.until is not None else \
            (known[-1] if known else None)
        if first is None or last is None:
            return known
        out: list[str] = []
        day, end = _dt.date.fromisoformat(first), _dt.date.fromisoformat(last)
        while day <= end and len(out) < MAX_DAYS:
            out.append(day.isoformat())
            day += _dt.timedelta(days=1)
        return out


@functools.lru_cache(maxsize=4096)
def _day_of_quarter_hour(quarter: int) -> str:
    return _dt.datetime.fromtimestamp(quarter * 900).astimezone().date().isoformat()


def _day(epoch: float) -> str:
    """The local date of ``epoch`` (UTC offsets are whole quarter hours: cached per one)."""
    return _day_of_quarter_hour(int(epoch // 900))


def _health(rec: TrailRecord, health: AuditHealth) -> None:
    if not rec.valid:
        health.unreadable_lines += 1
    elif rec.action == "audit-checkpoint":
        health.checkpoints += 1
    elif rec.action == "audit-segment-start":
        health.segment_headers += 1
    elif rec.action == "audit-records-lost":
        health.lost += rec.lost
    elif rec.action == "audit-io-error":
        health.io_errors += 1


def _add(summary: Summary, rec: TrailRecord) -> None:
    summary.records += 1
    if rec.kind == "alert":
        summary.findings += 1
        if rec.severity:
            summary.severities[rec.severity] += 1
        kind = rec.finding_kind or rec.action
        assert rec.timestamp is not None
        summary.per_day.setdefault(_day(rec.timestamp), Counter())[kind] += 1
        if rec.source:
            summary.offenders[rec.source] += 1
        if BLOCK_ACTION in rec.would_act:
            summary.would_block += 1
        if rec.finding_kind == WIFI_KIND:
            summary.wifi_refusals[rec.finding_subtype or "refused"] += 1
    if rec.action in MEDIA_ACTIONS and rec.media_verdict and not rec.media_partition:
        device = rec.media_device or "unknown device"
        seen = summary.media.setdefault(device, MediaSeen(device))
        seen.verdicts[rec.media_verdict] += 1
        seen.last_seen = rec.timestamp
    if rec.action == BLOCK_ACTION and rec.kind == "event":
        if rec.outcome == "success":
            summary.blocks.append(BlockMade(rec.source or "?", rec.timestamp, rec.rule_id,
                                            rec.message))
        else:
            summary.blocks_failed += 1


def summarise_records(records: Iterable[TrailRecord], directory: str, since: float | None,
                      until: float | None) -> Summary:
    summary = Summary(directory=directory, since=since, until=until)
    for rec in records:
        _health(rec, summary.health)  # health is about the whole trail, not the window
        if not rec.valid or rec.internal or rec.timestamp is None:
            continue
        if (since is not None and rec.timestamp < since) or \
                (until is not None and rec.timestamp >= until):
            continue
        _add(summary, rec)
    return summary


def summarise(directory: Path, since: float | None = None,
              until: float | None = None) -> Summary:
    """Read and verify the trail in ``directory`` and count what a reader wants to know."""
    summary = summarise_records(read_trail(directory, since), str(directory), since, until)
    result = verify_paths([directory])
    health = summary.health
    health.chain_ok = result.ok
    health.records, health.segments = result.records, result.segments
    health.first_sequence, health.last_sequence = result.first_sequence, result.last_sequence
    if result.problem is not None:
        p = result.problem
        health.problem = f"first bad sequence {p.sequence}: {p.reason}: {p.detail}"
    return summary
