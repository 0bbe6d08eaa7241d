"""finding -> decision -> actions -> audit, in one place.

Every finding that is not a suppressed repeat gets an alert record. In enforce mode
each action the decision names (other than ``log``) runs through :func:`audited`, so
its record says *failure* unless the action reports success. In monitor mode the
would-be actions are written into the alert record and nothing changes. Suppressed
repeats are counted (and summarised by the audit layer where it offers that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

import structlog

from edgeguard.actions.base import Action, audited
from edgeguard.audit.sink import AuditSink
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import decision_record
from edgeguard.events import (
    ActionKind,
    ActionResult,
    AuditRecord,
    Decision,
    EventKind,
    Finding,
    Mode,
    Outcome,
)

__all__ = ["ActionProvider", "Pipeline", "RepeatSummariser"]

log = structlog.get_logger("edgeguard.pipeline")


class ActionProvider(Protocol):
    """A component that carries out actions (e.g. nftables blocks) offers them here."""

    def actions(self) -> Mapping[ActionKind, Action]: ...


class RepeatSummariser(Protocol):
    """Turns suppressed repeats into periodic summary records (the audit layer's)."""

    def add(self, decision: Decision) -> None: ...


class Pipeline:
    def __init__(self, engine: DecisionEngine, audit: AuditSink,
                 actions: Mapping[ActionKind, Action] | None = None,
                 summariser: RepeatSummariser | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.actions: dict[ActionKind, Action] = dict(actions or {})
        self.summariser = summariser
        self.findings = 0
        self.suppressed = 0
        self.actions_failed = 0
        self.audit_errors = 0

    def add_actions(self, actions: Mapping[ActionKind, Action]) -> None:
        self.actions.update(actions)

    def submit(self, finding: Finding, section: str = "network") -> Decision:
        self.findings += 1
        decision = self.engine.decide(finding, section)
        if decision.suppressed:
            self.suppressed += 1
            if self.summariser is not None:
                self.summariser.add(decision)
            return decision
        wanted = tuple(a for a in decision.actions if a is not ActionKind.LOG)
        alert = decision_record(decision)
        fields = dict(alert.fields)
        if wanted and decision.mode is Mode.MONITOR:
            fields["edgeguard.would_act"] = tuple(a.value for a in wanted)
            details = tuple(self._describe(decision, kind) for kind in wanted)
            if any(details):
                fields["edgeguard.would_change"] = details
        self._write(dataclasses.replace(alert, outcome=Outcome.SUCCESS, fields=fields))
        if decision.mode is Mode.ENFORCE:
            for kind in wanted:
                self._act(decision, kind)
        return decision

    def _describe(self, decision: Decision, kind: ActionKind) -> str:
        describe = getattr(self.actions.get(kind), "describe", None)
        if not callable(describe):
            return ""
        try:
            return str(describe(decision))
        except Exception as exc:  # noqa: BLE001 - a description must never stop the record
            return f"({type(exc).__name__}: {exc})"

    def _act(self, decision: Decision, kind: ActionKind) -> None:
        base = decision_record(decision, action=f"{kind.value}")
        event_type = ("change",) if kind is ActionKind.RATE_LIMIT else ("denied",)
        record = dataclasses.replace(base, kind=EventKind.EVENT, event_type=event_type)
        action = self.actions.get(kind)

        def run() -> ActionResult:
            if action is None:
                return ActionResult(kind, ok=False, detail=f"no component provides {kind.value!r}")
            return action.apply(decision)

        try:
            result = audited(self.audit, record, run)
        except OSError as exc:
            self.audit_errors += 1
            log.error("audit write failed", action=kind.value, error=str(exc))
            return
        if not result.ok:
            self.actions_failed += 1

    def _write(self, record: AuditRecord) -> None:
        try:
            self.audit.write(record)
        except OSError as exc:
            self.audit_errors += 1
            log.error("audit write failed", error=str(exc))

    def counters(self) -> dict[str, int]:
        return {
            "findings": self.findings,
            "suppressed": self.suppressed,
            "actions_failed": self.actions_failed,
            "audit_errors": self.audit_errors,
        }
