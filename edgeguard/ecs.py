"""The one place where edgeguard's typed events meet ECS field names.

Records are nested JSON objects as ECS defines them (``{"event": {"action": ...}}``);
evidence and extra fields are given dotted (``"edgeguard.scan.type"``) and nested here.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeguard import __version__
from edgeguard.ecs_time import MAX_EPOCH, MIN_EPOCH, timestamp_in_range
from edgeguard.events import (
    ActionKind,
    AuditRecord,
    Decision,
    Endpoint,
    EventKind,
    Finding,
    Flow,
    Outcome,
    Scalar,
)
from edgeguard.findings import area_of

__all__ = [
    "ACTION_ECS",
    "ECS_ALLOWED_TYPES",
    "ECS_KINDS",
    "ECS_OUTCOMES",
    "ECS_VERSION",
    "FINDING_ECS",
    "MAX_EPOCH",
    "MIN_EPOCH",
    "MODULE",
    "Categorisation",
    "Observer",
    "action_categorisation",
    "categorise_action",
    "dataset_of",
    "decision_record",
    "finding_categorisation",
    "finding_record",
    "flatten",
    "flow_community_id",
    "iso_timestamp",
    "nest",
    "record_fields",
    "timestamp_in_range",
]

ECS_VERSION = "8.11.0"
MODULE = "edgeguard"  # event.module; event.dataset is edgeguard.<area>

JSONDict = dict[str, Any]

#: ECS 8.11 categorisation allowed values: event.kind, event.outcome, and for each
#: event.category the event.type values ECS expects with it
#: (https://www.elastic.co/guide/en/ecs/8.11/ecs-allowed-values-event-category.html).
ECS_KINDS = frozenset({"alert", "enrichment", "event", "metric", "state", "pipeline_error",
                       "signal"})
ECS_OUTCOMES = frozenset({"failure", "success", "unknown"})
ECS_ALLOWED_TYPES: Mapping[str, frozenset[str]] = {
    "api": frozenset({"access", "admin", "allowed", "change", "creation", "deletion",
                      "denied", "end", "info", "start", "user"}),
    "authentication": frozenset({"start", "end", "info"}),
    "configuration": frozenset({"access", "change", "creation", "deletion", "info"}),
    "database": frozenset({"access", "change", "info", "error"}),
    "driver": frozenset({"change", "end", "info", "start"}),
    "email": frozenset({"info"}),
    "file": frozenset({"access", "change", "creation", "deletion", "info"}),
    "host": frozenset({"access", "change", "end", "info", "start"}),
    "iam": frozenset({"admin", "change", "creation", "deletion", "group", "info", "user"}),
    "intrusion_detection": frozenset({"allowed", "denied", "info"}),
    "library": frozenset({"start"}),
    "malware": frozenset({"info"}),
    "network": frozenset({"access", "allowed", "connection", "denied", "end", "info",
                          "protocol", "start"}),
    "package": frozenset({"access", "change", "deletion", "info", "installation", "start"}),
    "process": frozenset({"access", "change", "end", "info", "start"}),
    "registry": frozenset({"access", "change", "creation", "deletion"}),
    "session": frozenset({"start", "end", "info"}),
    "threat": frozenset({"indicator"}),
    "vulnerability": frozenset({"info"}),
    "web": frozenset({"access", "error", "info"}),
}


@dataclass(frozen=True, slots=True)
class Categorisation:
    """ECS ``event.category`` and ``event.type`` of one kind of record."""

    category: tuple[str, ...]
    type: tuple[str, ...]


_NET_IDS = Categorisation(("network", "intrusion_detection"), ("info",))

#: The alert record of each finding kind. A finding is a fact: never "denied" or
#: "allowed" (what was done about it is the action record's, below).
FINDING_ECS: Mapping[str, Categorisation] = {
    "scan": _NET_IDS,
    "bittorrent": _NET_IDS,
    "arp-spoof": _NET_IDS,
    "flood": _NET_IDS,
    "wifi": Categorisation(("network",), ("connection", "info")),
    "wifi-rogue": Categorisation(("network", "threat"), ("info", "indicator")),
    "usb": Categorisation(("host", "configuration"), ("info",)),
    "usb-device": Categorisation(("host", "intrusion_detection"), ("info",)),
    "radio": Categorisation(("host", "intrusion_detection"), ("change", "info")),
}
_DEFAULT_FINDING = Categorisation(("host",), ("info",))

#: The record of an action carried out on a decision (enforce mode only), when it took
#: effect (``event.outcome: success``). One that failed keeps the category and says
#: ``info`` instead: "denied" counts only what was denied.
ACTION_ECS: Mapping[ActionKind, Categorisation] = {
    ActionKind.BLOCK: Categorisation(("network", "intrusion_detection"), ("denied",)),
    ActionKind.DROP_FLOW: Categorisation(("network", "intrusion_detection"), ("denied",)),
    ActionKind.RATE_LIMIT: Categorisation(("network", "configuration"), ("change",)),
    ActionKind.DISCONNECT: Categorisation(("network",), ("denied", "end")),
    ActionKind.DEAUTHORIZE: Categorisation(("host", "intrusion_detection"), ("denied",)),
    ActionKind.READ_ONLY: Categorisation(("host", "configuration"), ("change",)),
}
FAILED_ACTION_TYPE = ("info",)


def finding_categorisation(kind: str) -> Categorisation:
    return FINDING_ECS.get(kind, _DEFAULT_FINDING)


def action_categorisation(kind: ActionKind, outcome: Outcome) -> Categorisation:
    """What an action record says: its table entry when it succeeded, else ``info``."""
    done = ACTION_ECS.get(kind, Categorisation(("host",), ("change",)))
    if outcome is Outcome.SUCCESS:
        return done
    return Categorisation(done.category, FAILED_ACTION_TYPE)


def categorise_action(record: AuditRecord, kind: ActionKind) -> AuditRecord:
    """``record`` with the categorisation its outcome calls for: the one place an action
    record's ``event.category``/``event.type`` are set (opened and settled)."""
    cat = action_categorisation(kind, record.outcome)
    return dataclasses.replace(record, category=cat.category, event_type=cat.type)


#: event.dataset of records that are not about a finding, by action prefix (the first
#: matching prefix wins); a finding's record takes its area's dataset.
_DATASET_PREFIXES: tuple[tuple[str, str], ...] = (
    ("audit-", "audit"), ("finding-repeats", "audit"),
    ("usb-device", "kiosk"), ("usb-boot", "kiosk"), ("usb-authorized", "kiosk"),
    ("rfkill", "kiosk"), ("kiosk", "kiosk"),
    ("usb-", "media"), ("media", "media"),
    ("wifi", "wifi"), ("vpn", "wifi"), ("rtnl", "wifi"),
    ("network", "network"), ("capture", "network"), ("nft", "network"),
    ("block", "network"), ("unblock", "network"), ("drop-flow", "network"),
    ("rate-limit", "network"),
)


def dataset_of(action: str, finding_kind: Scalar = None) -> str:
    """``event.dataset``: ``edgeguard.<area>`` of the finding, else by the action's
    prefix; the daemon's own records (policy, start, stop) are ``edgeguard.daemon``."""
    if isinstance(finding_kind, str):
        area = area_of(finding_kind)
        if area is not None:
            return f"{MODULE}.{area.value}"
    for prefix, name in _DATASET_PREFIXES:
        if action.startswith(prefix):
            return f"{MODULE}.{name}"
    return f"{MODULE}.daemon"


def _machine_id() -> str | None:
    try:
        text = Path("/etc/machine-id").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


@dataclass(frozen=True, slots=True)
class Observer:
    """ECS ``observer.*``: the gateway or kiosk that wrote the record."""

    hostname: str
    type: str = "gateway"  # gateway | kiosk
    id: str | None = None  # /etc/machine-id
    product: str = "edgeguard"
    vendor: str = "edgeguard"
    version: str = __version__

    @classmethod
    def local(cls, hostname: str, kind: str = "gateway") -> Observer:
        return cls(hostname=hostname, type=kind, id=_machine_id())

    def ecs_fields(self) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {"observer.hostname": self.hostname,
                                  "observer.type": self.type,
                                  "observer.product": self.product,
                                  "observer.vendor": self.vendor,
                                  "observer.version": self.version}
        if self.id is not None:
            out["observer.id"] = self.id
        return out


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


@functools.lru_cache(maxsize=16)
def _default_observer(host: str) -> Mapping[str, Scalar]:
    return Observer(hostname=host).ecs_fields()


def record_fields(record: AuditRecord, timestamp: float, host: str,
                  observer: Mapping[str, Scalar] | None = None) -> dict[str, Scalar]:
    """Dotted ECS fields of one record (without ``event.sequence`` / ``event.hash``).
    ``observer``: :meth:`Observer.ecs_fields` of the writer (default: a gateway named
    ``host``)."""
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
        "event.module": MODULE,
        "event.dataset": dataset_of(record.action,
                                    record.fields.get("edgeguard.finding.kind")),
    }
    fields.update(observer if observer is not None else _default_observer(host))
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


def flow_community_id(flow: Flow | None) -> str | None:
    """``network.community_id`` of a finding's flow (None: no flow, or not hashable)."""
    # start-up: hashlib and the hash only when a record is written (not on import)
    from edgeguard.net.community_id import community_id  # noqa: PLC0415

    if flow is None:
        return None
    try:
        return community_id(flow.protocol, flow.source_ip, flow.destination_ip,
                            flow.source_port, flow.destination_port)
    except ValueError:
        return None


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
    flow_id = flow_community_id(finding.flow)
    if flow_id is not None:
        fields["network.community_id"] = flow_id
    cat = finding_categorisation(finding.kind)
    return AuditRecord(
        action=action or f"{finding.kind}-{finding.subtype}",
        message=finding.message,
        kind=EventKind.ALERT,
        category=cat.category,
        event_type=cat.type,
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


def categorisation_markdown() -> str:
    """docs/findings.md's ECS table: every finding kind's alert record and every
    action's record (a test keeps the file in step)."""

    def cell(values: tuple[str, ...]) -> str:
        return ", ".join(f"`{v}`" for v in values)

    lines = ["| record | event.kind | event.category | event.type | event.outcome |",
             "|---|---|---|---|---|"]
    for kind, cat in FINDING_ECS.items():
        lines.append(f"| finding `{kind}` (alert: `{kind}-<subtype>`) | `alert` | "
                     f"{cell(cat.category)} | {cell(cat.type)} | `success` |")
    for action, cat in ACTION_ECS.items():
        failed = action_categorisation(action, Outcome.FAILURE)
        lines.append(f"| action `{action.value}` (enforce mode) | `event` | {cell(cat.category)} "
                     f"| {cell(cat.type)} when it took effect, {cell(failed.type)} when it "
                     f"failed | `success` / `failure` |")
    return "\n".join(lines) + "\n"
