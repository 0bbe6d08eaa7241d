"""Typed events that cross module boundaries: findings, decisions and audit records.

The pipeline is ``source -> detector -> decision -> action -> audit``:

* a detector emits a :class:`Finding` (a fact it saw; it never acts),
* the decision engine turns a finding plus the policy into a :class:`Decision`,
* an action reports an :class:`ActionResult`,
* the audit writer renders an :class:`AuditRecord` to ECS-named JSON
  (the mapping lives in :mod:`edgeguard.ecs`, in one place).

Detector-specific facts travel in an *evidence* object: a frozen dataclass of the
detector's own that knows how to render itself as ECS-dotted fields (``edgeguard.scan.*``,
``volume.*``), so no loose dict crosses a module boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from edgeguard.valuetype import ValueType

__all__ = [
    "ActionKind",
    "ActionResult",
    "AuditRecord",
    "Decider",
    "Decision",
    "Endpoint",
    "EventKind",
    "Evidence",
    "Finding",
    "Flow",
    "Mode",
    "NoEvidence",
    "Outcome",
    "Scalar",
    "Severity",
]

#: A JSON scalar or a flat list of them: the only values evidence may carry.
Scalar: TypeAlias = str | int | float | bool | tuple[str | int | float | bool, ...] | None


class Severity(enum.Enum):
    """Breach severity as in LT2 §11 (minor / moderate / severe)."""

    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"

    @property
    def ecs(self) -> int:
        """ECS ``event.severity`` is numeric; we use 1 / 2 / 3."""
        return {"minor": 1, "moderate": 2, "severe": 3}[self.value]


class Mode(enum.Enum):
    MONITOR = "monitor"  # decide and audit the would-be action, change nothing
    ENFORCE = "enforce"  # decide, act, audit


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class EventKind(enum.Enum):
    """ECS ``event.kind``."""

    ALERT = "alert"  # a finding that breaches policy
    EVENT = "event"  # something happened (an action, a device arriving)
    STATE = "state"  # periodic state (counters, checkpoints)
    PIPELINE_ERROR = "pipeline_error"  # edgeguard's own trouble (bad policy, loss)


class ActionKind(enum.Enum):
    """What a decision may ask the actions layer to do."""

    LOG = "log"  # audit only
    BLOCK = "block"  # drop the offending source for a time (nftables)
    DROP_FLOW = "drop-flow"  # drop one flow (nftables)
    RATE_LIMIT = "rate-limit"  # rate-limit a source (nftables)
    DISCONNECT = "disconnect"  # leave a Wi-Fi network
    DEAUTHORIZE = "deauthorize"  # de-authorise a USB device
    READ_ONLY = "read-only"  # block device read-only (BLKROSET)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Endpoint(ValueType):
    """One end of a network finding: the actor is ``source``, victims ``destination``."""

    ip: str | None = None
    mac: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Flow(ValueType):
    """The one flow a finding is about (the packet that proved it): IP protocol number
    and both ends, as seen; rendered as ``network.community_id``."""

    protocol: int
    source_ip: str
    destination_ip: str
    source_port: int | None = None
    destination_port: int | None = None


class Evidence(Protocol):
    """A detector's own facts, rendered as ECS-dotted field names."""

    def ecs_fields(self) -> Mapping[str, Scalar]: ...


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class NoEvidence(ValueType):
    """A finding's evidence when the detector gives none (no fields)."""

    def ecs_fields(self) -> Mapping[str, Scalar]:
        return {}


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Finding(ValueType):
    """A fact a detector saw, e.g. "10.0.0.7 probed 25 ports on 10.0.0.5 in 3.1 s".

    ``kind`` / ``subtype`` name the finding (``scan``/``syn``, ``bittorrent``/``dht``,
    ``usb-storage``/``not-encrypted``); the policy's rules match on them. ``identifier``
    is what repeats are suppressed by (Zeek's notice identifier): two findings with the
    same kind and identifier within the suppression window are one notice. Its ECS
    categorisation (``event.category``/``event.type``) follows from the kind and the
    decision, in :mod:`edgeguard.ecs` alone: a detector cannot say "denied".
    ``flow``: the single flow the finding is about, where there is one.
    """

    kind: str
    subtype: str
    message: str
    identifier: str
    severity: Severity
    source: Endpoint | None = None
    destinations: tuple[Endpoint, ...] = ()
    transport: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    count: int = 1
    evidence: Evidence = field(default_factory=NoEvidence)
    flow: Flow | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Decision(ValueType):
    """What the policy says to do about one finding."""

    finding: Finding
    rule_id: str
    severity: Severity
    mode: Mode
    actions: tuple[ActionKind, ...]
    suppressed: bool = False  # a repeat within the rule's window: counted, not re-acted
    #: The policy exception (``exceptions[].id``) that reduced the actions to ``log``.
    exception: str = ""

    @property
    def enforcing(self) -> bool:
        return self.mode is Mode.ENFORCE


class Decider(Protocol):
    """The decision engine as a proposing area sees it: match the policy on a finding.
    ``suppress=False`` for a proposal that is a state change recorded every time (a media
    node's verdict), not a notice whose repeats are suppressed."""

    def decide(self, finding: Finding, *, suppress: bool = True) -> Decision: ...

    def forget(self, kind: str, identifier: str) -> bool:
        """Forget the repeat suppression of one finding (kind, identifier), so the next
        one is acted on again (after ``net unblock``); True if there was any."""
        ...


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ActionResult(ValueType):
    """What an action reports. ``changed`` is False when the state already held."""

    action: ActionKind
    ok: bool
    detail: str = ""
    changed: bool = True


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class AuditRecord(ValueType):
    """One audit record before the writer gives it a sequence number and hash.

    ``action`` is ECS ``event.action`` (``usb-read-only``, ``scan-detected``,
    ``policy-reload-failed``...). ``fields`` holds further ECS-dotted fields; use it
    for the evidence of a finding.
    """

    action: str
    message: str
    kind: EventKind = EventKind.EVENT
    category: tuple[str, ...] = ("host",)
    event_type: tuple[str, ...] = ("info",)
    outcome: Outcome = Outcome.UNKNOWN
    severity: Severity | None = None
    rule_id: str | None = None
    mode: Mode | None = None
    source: Endpoint | None = None
    destinations: tuple[Endpoint, ...] = ()
    transport: str | None = None
    timestamp: float | None = None  # None: the writer stamps it
    fields: Mapping[str, Scalar] = field(default_factory=dict)
