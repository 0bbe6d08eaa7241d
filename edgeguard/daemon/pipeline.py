"""finding -> decision -> actions -> audit, in one place, for every area.

Every finding that is not a suppressed repeat gets an alert record. In enforce mode
each action the decision names (other than ``log``) is queued to the action runner
with its record opened as *failure*; the record is written with the outcome the action
reports when it has run (off the event loop in the daemon:
:class:`~edgeguard.actions.worker.ActionWorker`). In monitor mode the would-be actions
are written into the alert record and nothing changes. Suppressed repeats are counted
(and summarised by the audit layer where it offers that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

import structlog

from edgeguard.actions.base import Action, Describes, settle
from edgeguard.actions.worker import ActionJob, ActionRunner, InlineRunner
from edgeguard.audit.sink import AuditSink
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import categorise_action, decision_record
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
from edgeguard.findings import Area, area_of, finding_type

__all__ = ["Pipeline", "RepeatSummariser", "action_record"]

log = structlog.get_logger("edgeguard.pipeline")


class RepeatSummariser(Protocol):
    """Turns suppressed repeats into periodic summary records (the audit layer's)."""

    def add(self, decision: Decision) -> None: ...


def action_record(decision: Decision, kind: ActionKind,
                  base: AuditRecord | None = None) -> AuditRecord:
    """The record of one action on a decision, opened as a failure. ``base``: the
    decision's record (:func:`decision_record`), when the caller has it already."""
    if base is None:
        base = decision_record(decision)
    return categorise_action(dataclasses.replace(base, action=kind.value, kind=EventKind.EVENT,
                                                 outcome=Outcome.FAILURE), kind)


class Pipeline:
    def __init__(self, engine: DecisionEngine, audit: AuditSink,
                 actions: Mapping[ActionKind, Action] | None = None,
                 summariser: RepeatSummariser | None = None,
                 runner: ActionRunner | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.actions: dict[ActionKind, Action] = dict(actions or {})  # any area's
        self._area_actions: dict[Area, dict[ActionKind, Action]] = {}
        self.summariser = summariser
        self.runner: ActionRunner = runner if runner is not None else InlineRunner()
        self.findings = 0
        self.suppressed = 0
        self.actions_failed = 0
        self.audit_errors = 0

    def add_actions(self, actions: Mapping[ActionKind, Action], area: Area | None = None) -> None:
        """Actions for the findings of ``area`` (None: of any area without its own)."""
        if area is None:
            self.actions.update(actions)
        else:
            self._area_actions.setdefault(area, {}).update(actions)

    def action_for(self, finding: Finding, kind: ActionKind) -> Action | None:
        area = area_of(finding.kind)
        own = self._area_actions.get(area) if area is not None else None
        if own is not None and kind in own:
            return own[kind]
        return self.actions.get(kind)

    def submit(self, finding: Finding) -> Decision:
        """Decide about ``finding`` (its area's mode applies), record it, queue its actions."""
        self.findings += 1
        decision = self.engine.decide(finding)
        wanted = tuple(a for a in decision.actions if a is not ActionKind.LOG)
        if decision.suppressed:
            self.suppressed += 1
            if self.summariser is not None:
                self.summariser.add(decision)
            known = finding_type(finding.kind, finding.subtype)
            if known is not None and known.reapply_on_repeat:
                # refused again; the alert is not repeated
                self._act(decision, wanted, decision_record(decision))
            return decision
        alert = decision_record(decision)
        fields = dict(alert.fields)
        if wanted and decision.mode is Mode.MONITOR:
            fields["edgeguard.would_act"] = tuple(a.value for a in wanted)
            details = tuple(self._describe(decision, kind) for kind in wanted)
            if any(details):
                fields["edgeguard.would_change"] = details
        self._write(dataclasses.replace(alert, outcome=Outcome.SUCCESS, fields=fields))
        self._act(decision, wanted, alert)
        return decision

    def _act(self, decision: Decision, wanted: tuple[ActionKind, ...],
             base: AuditRecord) -> None:
        if decision.mode is not Mode.ENFORCE:
            return
        for kind in wanted:
            self._queue(ActionJob(decision, kind, self.action_for(decision.finding, kind),
                                  action_record(decision, kind, base)))

    def _describe(self, decision: Decision, kind: ActionKind) -> str:
        action: object = self.action_for(decision.finding, kind)
        if not isinstance(action, Describes):
            return ""
        try:
            return str(action.describe(decision))
        except Exception as exc:  # noqa: BLE001 - a description must never stop the record
            return f"({type(exc).__name__}: {exc})"

    def _queue(self, job: ActionJob) -> None:
        if not self.runner.put(job, self._settled):
            self._settled(job, ActionResult(job.kind, ok=False, changed=False,
                                            detail="not carried out: the action queue is full"))

    def _settled(self, job: ActionJob, result: ActionResult) -> None:
        """On the loop: write the job's record with the outcome the action reported."""
        if not result.ok:
            self.actions_failed += 1
        try:
            self.audit.write(categorise_action(settle(job.record, result), job.kind))
        except OSError as exc:
            self.audit_errors += 1
            log.error("audit write failed", action=job.kind.value, error=str(exc))

    def abandon(self, job: ActionJob, why: str) -> None:
        """A queued job that will not run (the daemon is stopping): a failure on record."""
        self._settled(job, ActionResult(job.kind, ok=False, changed=False,
                                        detail=f"not carried out: {why}"))

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
