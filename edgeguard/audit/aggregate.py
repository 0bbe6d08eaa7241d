"""Summaries of suppressed repeats: every attempt accounted for, not one line per packet.

The decision engine marks a repeat of the same finding (kind + identifier) within the
rule's window as ``suppressed``; it is not acted on again. The aggregator counts those
repeats per (rule, kind, identifier) and writes one ``finding-repeats`` record per key
and window with the number of repeated findings (``edgeguard.repeats.count``: findings,
not packets), the probes or packets those findings carried (``edgeguard.repeats.events``,
the sum of each finding's own count), first and last time seen and the distinct sources
(up to a cap, then how often other sources were seen). Nothing is dropped: when more keys
are open than ``max_keys``, the oldest is flushed early.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.ecs import finding_categorisation, iso_timestamp
from edgeguard.events import AuditRecord, Decision, EventKind, Outcome, Scalar

__all__ = ["REPEATS", "Aggregator"]

REPEATS = "finding-repeats"
_MAX_SOURCES = 32


@dataclass(slots=True)
class _Tally:
    decision: Decision
    opened: float  # monotonic
    first_seen: float
    last_seen: float
    count: int = 0  # repeated findings
    events: int = 0  # the probes/packets those findings counted
    sources: set[str] = field(default_factory=set)
    sources_beyond: int = 0


class Aggregator:
    """``add`` a suppressed decision; ``flush`` writes the summaries that are due."""

    def __init__(self, sink: AuditSink, clock: Clock, *, window: float = 60.0,
                 max_keys: int = 10_000) -> None:
        self.sink = sink
        self.clock = clock
        self.window = window
        self.max_keys = max_keys
        self._open: OrderedDict[tuple[str, str, str], _Tally] = OrderedDict()
        self.added = 0
        self.summarised = 0  # repeated findings written in summary records
        self.records = 0
        self.early_flushes = 0

    @property
    def pending(self) -> int:
        """Repeated findings counted but not yet written."""
        return sum(t.count for t in self._open.values())

    def add(self, decision: Decision) -> None:
        finding = decision.finding
        key = (decision.rule_id, finding.kind, finding.identifier)
        now = self.clock.now()
        seen_first = finding.first_seen or now
        seen_last = finding.last_seen or now
        tally = self._open.get(key)
        if tally is None:
            tally = _Tally(decision, self.clock.monotonic(), seen_first, seen_last)
            self._open[key] = tally
            while len(self._open) > self.max_keys:
                _key, oldest = self._open.popitem(last=False)
                self.early_flushes += 1
                self._write(oldest)
        tally.count += 1
        tally.events += max(1, finding.count)
        tally.first_seen = min(tally.first_seen, seen_first)
        tally.last_seen = max(tally.last_seen, seen_last)
        tally.decision = decision
        source = (finding.source.ip or finding.source.mac) if finding.source else None
        if source is not None and source not in tally.sources:
            if len(tally.sources) < _MAX_SOURCES:
                tally.sources.add(source)
            else:
                tally.sources_beyond += 1
        self.added += 1

    def flush(self, *, force: bool = False) -> int:
        """Write the summaries whose window has passed (all of them with ``force``)."""
        now = self.clock.monotonic()
        due = [k for k, t in self._open.items() if force or now - t.opened >= self.window]
        for key in due:
            self._write(self._open.pop(key))
        return len(due)

    def _write(self, tally: _Tally) -> None:
        decision, finding = tally.decision, tally.decision.finding
        fields: dict[str, Scalar] = {
            "edgeguard.finding.kind": finding.kind,
            "edgeguard.finding.subtype": finding.subtype,
            "edgeguard.finding.id": finding.identifier,
            "edgeguard.repeats.count": tally.count,
            "edgeguard.repeats.events": tally.events,
            "edgeguard.repeats.sources": tuple(sorted(tally.sources)),
            "edgeguard.repeats.other_source_sightings": tally.sources_beyond,
            "event.start": iso_timestamp(tally.first_seen),
            "event.end": iso_timestamp(tally.last_seen),
        }
        # One actor throughout (the usual case: the identifier is the actor): the summary
        # carries source.* like the finding did, so a SIEM correlates it on source.ip.
        single = len(tally.sources) <= 1 and tally.sources_beyond == 0
        cat = finding_categorisation(finding.kind)
        record = AuditRecord(
            source=finding.source if single else None,
            destinations=finding.destinations if single else (),
            action=REPEATS, kind=EventKind.ALERT, category=cat.category,
            event_type=cat.type, outcome=Outcome.SUCCESS, severity=decision.severity,
            rule_id=decision.rule_id, mode=decision.mode, transport=finding.transport,
            message=f"{tally.count} repeated finding(s) of {finding.kind}/{finding.subtype} "
                    f"{finding.identifier!r} ({tally.events} probes or packets; suppressed, "
                    "not re-acted)",
            fields=fields)
        self.sink.write(record)
        self.summarised += tally.count
        self.records += 1
