"""The action protocols, and the rule that the audit record is opened before acting.

As in USBGuard's ``Audit.cpp``: the record starts with outcome *failure*; only an
action that reports success turns it into *success*. An exception is a failure with
its message recorded, never a lost record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from edgeguard.audit.sink import AuditSink
from edgeguard.events import ActionKind, ActionResult, AuditRecord, Decision, Outcome
from edgeguard.findings import Area

__all__ = [
    "Action",
    "ActionError",
    "ActionProvider",
    "BatchAction",
    "Describes",
    "audited",
    "run_action",
    "settle",
    "waits_on_system",
]


class ActionError(Exception):
    """An action could not be carried out; the message goes into the audit record."""


class Action(Protocol):
    kind: ActionKind

    def apply(self, decision: Decision) -> ActionResult:
        """Make the system state match the decision. Idempotent."""


@runtime_checkable
class Describes(Protocol):
    """An action that can say what it would change (monitor-mode records)."""

    def describe(self, decision: Decision) -> str: ...


@runtime_checkable
class BatchAction(Protocol):
    """An action that waits on the system (a subprocess, a kernel transaction: nftables)
    and can apply many decisions in one go. The daemon runs these on its action worker
    thread; other actions (a sysfs write, a wpa_supplicant request) run on the loop.
    Methods only, so :func:`waits_on_system` can test the class once and cache it."""

    def apply_batch(self, decisions: Sequence[Decision]) -> list[ActionResult]:
        """One result per decision, in order."""


@runtime_checkable
class ActionProvider(Protocol):
    """A component that carries out actions (nftables, USB de-authorisation) offers them
    for the findings of its ``area``: media and kiosk both de-authorise, each its own
    devices, so the pipeline looks an action up by the finding's area first."""

    area: Area

    def actions(self) -> Mapping[ActionKind, Action]: ...


_BATCHING: dict[type, bool] = {}


def waits_on_system(action: object) -> bool:
    """Whether ``action`` is a :class:`BatchAction` (cached per class: a protocol check
    costs ~0.3 ms, too much per finding in a burst)."""
    cls = type(action)
    known = _BATCHING.get(cls)
    if known is None:
        known = _BATCHING[cls] = isinstance(action, BatchAction)
    return known


def settle(record: AuditRecord, result: ActionResult) -> AuditRecord:
    """``record`` (opened as a failure) completed with what the action reported."""
    fields = dict(record.fields)
    if result.detail:
        key = "edgeguard.action.detail" if result.ok else "error.message"
        fields[key] = result.detail
    fields["edgeguard.action.changed"] = result.changed
    outcome = Outcome.SUCCESS if result.ok else Outcome.FAILURE
    return dataclasses.replace(record, outcome=outcome, fields=fields)


def run_action(act: Callable[[], ActionResult]) -> ActionResult:
    """Run ``act``; an exception is a failed result carrying its message."""
    try:
        return act()
    except Exception as exc:  # noqa: BLE001 - any failure must still be audited
        return ActionResult(ActionKind.LOG, ok=False, detail=f"{type(exc).__name__}: {exc}")


def audited(sink: AuditSink, record: AuditRecord, act: Callable[[], ActionResult]) -> ActionResult:
    """Run ``act`` and write ``record`` with the outcome it reports (failure by default)."""
    result = run_action(act)
    sink.write(settle(record, result))
    return result
