"""Which records a person asked for: a time window, kinds, a minimum severity, an
outcome, an address. ``--since``/``--until`` take ``today``, ``yesterday``, ``now``, an
age (``90s``, ``30m``, ``1h``, ``7d``, ``2w``) or an ISO date/time (local time unless it
names a zone), as journalctl does."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from edgeguard.report.records import TrailRecord

__all__ = ["SEVERITIES", "RecordFilter", "TimeSpecError", "parse_when"]

#: severities in rising order; ``--severity X`` keeps X and everything above it
SEVERITIES = ("minor", "moderate", "severe")

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TimeSpecError(ValueError):
    """A ``--since``/``--until`` value that is none of the accepted forms."""


def _midnight(now: float, days_back: int) -> float:
    local = _dt.datetime.fromtimestamp(now).astimezone()
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (day - _dt.timedelta(days=days_back)).timestamp()


def parse_when(text: str, now: float) -> float:
    """Epoch seconds for a ``--since``/``--until`` value, relative to ``now``."""
    word = text.strip().lower()
    if word == "now":
        return now
    if word == "today":
        return _midnight(now, 0)
    if word == "yesterday":
        return _midnight(now, 1)
    age = _AGE.match(word)
    if age is not None:
        return now - float(age.group(1)) * _UNIT[age.group(2)]
    try:
        stamp = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeSpecError(f"{text!r}: expected today, yesterday, now, an age such as "
                            "1h or 7d, or an ISO date/time") from None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # a naive time is the reader's local time
    return stamp.timestamp()


@dataclass(frozen=True, slots=True)
class RecordFilter:
    since: float | None = None
    until: float | None = None
    kinds: frozenset[str] = field(default_factory=frozenset)
    min_severity: str | None = None
    outcomes: frozenset[str] = field(default_factory=frozenset)
    addresses: frozenset[str] = field(default_factory=frozenset)
    include_internal: bool = False

    def matches(self, rec: TrailRecord) -> bool:
        if not rec.valid:
            return True  # damage is always shown
        if rec.internal and not self.include_internal:
            return False
        return (self._in_window(rec.timestamp)
                and (not self.kinds or bool(self.kinds & {
                    rec.kind, rec.finding_kind, rec.action, rec.action.split("-", 1)[0]}))
                and self._severe_enough(rec.severity)
                and (not self.outcomes or rec.outcome in self.outcomes)
                and (not self.addresses
                     or bool(self.addresses & {rec.source, rec.destination, rec.host})))

    def _in_window(self, stamp: float | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if stamp is None:
            return False
        return ((self.since is None or stamp >= self.since)
                and (self.until is None or stamp < self.until))

    def _severe_enough(self, severity: str | None) -> bool:
        if self.min_severity is None:
            return True
        return severity in SEVERITIES and \
            SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)
