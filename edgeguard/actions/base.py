"""The action protocol, and the rule that the audit record is opened before acting.

As in USBGuard's ``Audit.cpp``: the record starts with outcome *failure*; only an
action that reports success turns it into *success*. An exception is a failure with
its message recorded, never a lost record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from edgeguard.audit.sink import AuditSink
from edgeguard.events import ActionKind, ActionResult, AuditRecord, Decision, Outcome

__all__ = ["Action", "ActionError", "audited"]


class ActionError(Exception):
    """An action could not be carried out; the message goes into the audit record."""


class Action(Protocol):
    kind: ActionKind

    def apply(self, decision: Decision) -> ActionResult:
        """Make the system state match the decision. Idempotent."""


def audited(sink: AuditSink, record: AuditRecord, act: Callable[[], ActionResult]) -> ActionResult:
    """Run ``act`` and write ``record`` with the outcome it reports (failure by default)."""
    try:
        result = act()
    except Exception as exc:  # noqa: BLE001 - any failure must still be audited
        result = ActionResult(ActionKind.LOG, ok=False, detail=f"{type(exc).__name__}: {exc}")
    fields = dict(record.fields)
    if result.detail:
        key = "edgeguard.action.detail" if result.ok else "error.message"
        fields[key] = result.detail
    fields["edgeguard.action.changed"] = result.changed
    outcome = Outcome.SUCCESS if result.ok else Outcome.FAILURE
    sink.write(dataclasses.replace(record, outcome=outcome, fields=fields))
    return result
