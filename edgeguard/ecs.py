"""The one place where edgeguard's typed events meet ECS field names.

Records are nested JSON objects as ECS defines them (``{"event": {"action": ...}}``);
evidence and extra fields are given dotted (``"edgeguard.scan.type"``) and nested here.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from edgeguard.events import AuditRecord, Decision, Endpoint, EventKind, Finding, Outcome, Scalar

__all__ = [
    "ECS_VERSION",
    "decision_record",
    "finding_record",
    "flatten",
    "iso_timestamp",
    "nest",
    "record_fields",
    "timestamp_in_range",
]

ECS_VERSION = "8.11.0"

JSONDict = dict[str, Any]


#: The times RFC 3339 (and Python's datetime) can write: 0001-01-01T00:00:00Z to
#: 9999-12-31T23:59:59Z. A time outside (a capture file's forged or damaged header:
#: pcapng timestamps are 64-bit ticks) is written as the nearest end, never raised on;
#: callers that take times from input count those with :func:`timestamp_in_range`.
MIN_EPOCH = -62_135_596_800.0
MAX_EPOCH = 253_402_300_799.0


def timestamp_in_range(epoch: float) -> bool:
    """Whether ``epoch`` is written as it is (not clamped) by :func:`iso_timestamp`."""
    return MIN_EPOCH <= epoch <= MAX_EPOCH  # False for NaN too


def iso_timestamp(epoch: float) -> str:
    """``@timestamp``: RFC 3339 UTC with microseconds; clamped to the range it can show
    (NaN as the earliest time)."""
    if not timestamp_in_range(epoch):
        epoch = MAX_EPOCH if epoch > MAX_EPOCH else MIN_EPOCH
    stamp = _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)
    # isoformat, not strftime("%Y"): glibc writes year 1 as "1", not "0001"
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def nest(dotted: Mapping[str, Scalar]) -> JSONDict:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``."""
    out: JSONDict = {}
    for key, value in dotted.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"ECS field {key!r} collides with a scalar at {part!r}")
            node = child
        node[parts[-1]] = list(value) if isinstance(value, tuple) else value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of :func:`nest`: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _endpoint(prefix: str, ep: Endpoint) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    if ep.ip is not None:
        out[f"{prefix}.ip"] = ep.ip
    if ep.mac is not None:
        out[f"{prefix}.mac"] = ep.mac
    if ep.port is not None:
        out[f"{prefix}.port"] = ep.port
    return out


def record_fields(record: AuditRecord, timestamp: float, host: str) -> dict[str, Scalar]:
    """Dotted ECS fields of one record (without ``event.sequence`` / ``event.hash``)."""
    fields: dict[str, Scalar] = {
        "@timestamp": iso_timestamp(timestamp),
        "ecs.version": ECS_VERSION,
        "message": record.message,
        "host.name": host,
        "event.kind": record.kind.value,
        "event.category": record.category,
        "event.type": record.event_type,
        "event.action": record.action,
        "event.outcome": record.outcome.value,
        "event.provider": "edgeguard",
    }
    if record.severity is not None:
        fields["event.severity"] = record.severity.ecs
        fields["edgeguard.severity"] = record.severity.value
    if record.rule_id is not None:
        fields["rule.id"] = record.rule_id
    if record.mode is not None:
        fields["edgeguard.mode"] = record.mode.value
    if record.transport is not None:
        fields["network.transport"] = record.transport
    if record.source is not None:
        fields.update(_endpoint("source", record.source))
    if record.destinations:
        first = record.destinations[0]
        fields.update(_endpoint("destination", first))
        ips = tuple(d.ip for d in record.destinations if d.ip is not None)
        if len(ips) > 1:
            fields["edgeguard.destinations.ip"] = ips
    fields.update(record.fields)
    return fields


def finding_record(finding: Finding, action: str | None = None) -> AuditRecord:
    """An alert record for a finding (used when the decision is "log only")."""
    fields: dict[str, Scalar] = {
        "edgeguard.finding.kind": finding.kind,
        "edgeguard.finding.subtype": finding.subtype,
        "edgeguard.finding.id": finding.identifier,
        "edgeguard.finding.count": finding.count,
        "event.start": iso_timestamp(finding.first_seen) if finding.first_seen else None,
        "event.end": iso_timestamp(finding.last_seen) if finding.last_seen else None,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.update(finding.evidence.ecs_fields())
    return AuditRecord(
        action=action or f"{finding.kind}-{finding.subtype}",
        message=finding.message,
        kind=EventKind.ALERT,
        category=finding.category,
        event_type=finding.event_type,
        outcome=Outcome.SUCCESS,
        severity=finding.severity,
        source=finding.source,
        destinations=finding.destinations,
        transport=finding.transport,
        timestamp=finding.last_seen or None,
        fields=fields,
    )


def decision_record(decision: Decision, action: str | None = None) -> AuditRecord:
    """The record of a decision about a finding; the outcome is set by the caller."""
    base = finding_record(decision.finding, action)
    fields = dict(base.fields)
    fields["edgeguard.actions"] = tuple(a.value for a in decision.actions)
    if decision.suppressed:
        fields["edgeguard.suppressed"] = True
    if decision.exception:
        fields["edgeguard.exception.id"] = decision.exception
    return AuditRecord(
        action=base.action,
        message=base.message,
        kind=base.kind,
        category=base.category,
        event_type=base.event_type,
        outcome=Outcome.FAILURE,
        severity=decision.severity,
        rule_id=decision.rule_id,
        mode=decision.mode,
        source=base.source,
        destinations=base.destinations,
        transport=base.transport,
        timestamp=base.timestamp,
        fields=fields,
    )
