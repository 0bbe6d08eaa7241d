"""A :class:`~edgeguard.report.summary.Summary` as one self-contained HTML page.

Inline CSS and inline SVG only: no script, no font, no image, no external URL, and a
Content-Security-Policy that forbids fetching anything, so the page opens the same in any
browser, offline, from an email attachment. Every value from the trail is HTML-escaped,
its control characters shown as escapes (an SSID or a USB serial is attacker-chosen).
The chart's bars carry ``data-day``, ``data-kind`` and ``data-count`` so a test (or a
curious reader) can check the numbers.
"""

from __future__ import annotations

import html
from collections import Counter

from edgeguard.report.summary import TOP_N, Summary
from edgeguard.report.text import health_line, local_time, verdict_list
from edgeguard.textsafe import escape as printable

__all__ = ["render_html"]

#: chart geometry, in SVG user units
CHART_HEIGHT = 200
BAR_SLOT = 24
AXIS = 40
#: colours of the kinds in the chart, in the order the kinds first appear (then repeated)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;
border-bottom:1px solid #eee}td.n{text-align:right}.bad{color:#b00;font-weight:bold}
.ok{color:#070;font-weight:bold}.legend span{display:inline-block;margin-right:1em}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}
"""


def _e(text: object) -> str:
    """Escaped for HTML, control characters made visible (``\\x1b``), never interpreted."""
    return html.escape(printable(str(text)), quote=True)


def _chart(summary: Summary) -> str:
    days = summary.days()
    kinds = summary.kinds
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    peak = max((sum(c.values()) for c in summary.per_day.values()), default=0) or 1
    width = AXIS + BAR_SLOT * max(len(days), 1) + 10
    parts = [f'<svg id="findings-chart" role="img" '
             f'width="{width}" height="{CHART_HEIGHT + 60}" '
             f'viewBox="0 0 {width} {CHART_HEIGHT + 60}">'
             f'<title>Findings per day by kind</title>'
             f'<line x1="{AXIS}" y1="{CHART_HEIGHT}" x2="{width - 5}" y2="{CHART_HEIGHT}" '
             f'stroke="#444"/><text x="{AXIS - 4}" y="12" text-anchor="end" '
             f'font-size="10">{peak}</text>'
             f'<text x="{AXIS - 4}" y="{CHART_HEIGHT}" text-anchor="end" font-size="10">0</text>']
    for i, day in enumerate(days):
        x = AXIS + i * BAR_SLOT + 3
        y = float(CHART_HEIGHT)
        counts = summary.per_day.get(day, Counter())
        for kind in kinds:
            n = counts.get(kind, 0)
            if not n:
                continue
            h = (CHART_HEIGHT - 10) * n / peak
            y -= h
            parts.append(f'<rect class="bar" x="{x}" y="{y:.1f}" width="{BAR_SLOT - 6}" '
                         f'height="{h:.1f}" fill="{colour[kind]}" data-day="{_e(day)}" '
                         f'data-kind="{_e(kind)}" data-count="{n}"><title>{_e(day)}: '
                         f'{n} {_e(kind)}</title></rect>')
        parts.append(f'<text x="{x + (BAR_SLOT - 6) / 2}" y="{CHART_HEIGHT + 8}" '
                     f'font-size="9" transform="rotate(60 {x + (BAR_SLOT - 6) / 2} '
                     f'{CHART_HEIGHT + 8})">{_e(day[5:])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{colour[k]}"></i>{_e(k)}'
                     f"</span>" for k in kinds)
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]], table_id: str) -> str:
    if not rows:
        return f'<p id="{table_id}">None.</p>'
    cells = "".join("<tr>" + "".join(
        f'<td class="n">{_e(c)}</td>' if isinstance(c, int) else f"<td>{_e(c)}</td>"
        for c in row) + "</tr>" for row in rows)
    heads = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f'<table id="{table_id}"><tr>{heads}</tr>{cells}</table>'


def render_html(summary: Summary) -> str:
    s = summary
    h = s.health
    media = sorted(s.media.values(), key=lambda m: -sum(m.verdicts.values()))[:TOP_N]
    refusals = sum(s.wifi_refusals.values())
    health_class = "ok" if h.chain_ok and not h.lost else "bad"
    body = [
        f"<h1>edgeguard report</h1><p>Audit trail <code>{_e(s.directory)}</code>, from "
        f"{_e(local_time(s.since))} to {_e(local_time(s.until))} (local time): "
        f'<b id="total-records">{s.records}</b> records, '
        f'<b id="total-findings">{s.findings}</b> findings.</p>',
        "<h2>Findings per day, by kind</h2>", _chart(s),
        "<h2>Top offending hosts</h2>",
        _table(("Address", "Findings"), list(s.offenders.most_common(TOP_N)), "offenders"),
        "<h2>USB media seen, and what was decided</h2>",
        _table(("Device", "Decisions", "Last seen"),
               [(m.device, verdict_list(m.verdicts), local_time(m.last_seen)) for m in media],
               "media"),
        f'<h2>Blocks made: <span id="blocks-made">{len(s.blocks)}</span></h2>'
        f"<p>{s.blocks_failed} failed; "
        f'<span id="would-block">{s.would_block}</span> findings in monitor mode would '
        "have blocked.</p>",
        _table(("When", "Address", "Rule", "Why"),
               [(local_time(b.when), b.address, b.rule_id or "", b.message)
                for b in s.blocks[-TOP_N:]], "blocks"),
        f'<h2>Wi-Fi refusals: <span id="wifi-refusals">{refusals}</span></h2>',
        _table(("Why", "Refusals"), list(s.wifi_refusals.most_common()), "wifi"),
        "<h2>Audit health</h2>",
        f'<p id="audit-health" class="{health_class}">{_e(health_line(h))}</p>',
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">"
            f"<title>edgeguard report</title><style>{_STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
