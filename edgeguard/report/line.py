"""One record as one line for a person (``audit tail``): time, sequence, kind, action,
outcome, severity, rule, addresses, what monitor mode *would* have done, the message.

The first five words keep their places (time, ``#sequence``, kind, action, outcome) so
scripts that cut columns keep working. Every field an attacker may shape (an SSID, a
serial, a message quoting them) is escaped before it reaches the terminal.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from edgeguard.report.records import TrailRecord
from edgeguard.textsafe import escape as printable

__all__ = ["LineStyle", "render_record", "use_colour"]

_RESET = "\x1b[0m"
_COLOURS: Mapping[str, str] = {
    "severe": "\x1b[1;31m", "moderate": "\x1b[33m", "minor": "\x1b[36m",
    "failure": "\x1b[31m", "would": "\x1b[35m", "internal": "\x1b[2m",
}


def use_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


@dataclass(frozen=True, slots=True)
class LineStyle:
    utc: bool = False
    colour: bool = False

    def paint(self, text: str, name: str) -> str:
        return f"{_COLOURS[name]}{text}{_RESET}" if self.colour else text

    def time(self, epoch: float | None) -> str:
        if epoch is None:
            return "-"
        if self.utc:
            return _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


def render_record(rec: TrailRecord, style: LineStyle) -> str:
    if not rec.valid:
        return "?? " + printable(rec.line.decode("utf-8", "replace"))
    outcome = rec.outcome or "-"
    parts = [
        style.time(rec.timestamp),
        f"#{rec.sequence if rec.sequence is not None else '?'}",
        printable(rec.kind or "-"),
        printable(rec.action or "-"),
        style.paint(outcome, "failure") if outcome == "failure" else printable(outcome),
    ]
    if rec.severity:
        name = rec.severity if rec.severity in _COLOURS else "minor"
        parts.append(style.paint(printable(rec.severity.upper()), name))
    if rec.mode == "monitor":
        parts.append("[monitor]")
    if rec.rule_id:
        parts.append(f"rule={printable(rec.rule_id)}")
    if rec.source or rec.destination:
        parts.append(f"{printable(rec.source or '-')}->{printable(rec.destination or '-')}")
    if rec.would_act:
        detail = "; ".join(d for d in rec.would_change if d)
        would = "would " + ",".join(rec.would_act) + (f" ({detail})" if detail else "")
        parts.append(style.paint(printable(would), "would"))
    parts.append(printable(rec.message))
    line = " ".join(parts)
    return style.paint(line, "internal") if rec.internal and style.colour else line
