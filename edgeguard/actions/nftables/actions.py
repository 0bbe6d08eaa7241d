"""``Action`` implementations for BLOCK, DROP_FLOW and RATE_LIMIT.

Each maps the decision to one change (:func:`~.plan.plan`) and applies it in one nft
transaction. They act only when ``decision.mode`` is enforce: in monitor mode they
report the would-be change and install nothing, so a pipeline that calls them anyway
still changes nothing. The daemon's pipeline (:mod:`edgeguard.daemon.pipeline`) opens
the audit record around :meth:`NftAction.apply` (``event.type`` denied, the finding id
and rule) and finds these actions through :meth:`EnforcementComponent.actions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from edgeguard.actions.nftables.enforcer import Enforcer
from edgeguard.actions.nftables.plan import ENFORCED_KINDS, Change, Refusal, plan
from edgeguard.events import ActionKind, ActionResult, Decision, Mode
from edgeguard.net.config import NetworkConfig

__all__ = ["NftAction", "nft_actions", "would_be"]

def would_be(decision: Decision, kind: ActionKind, network: NetworkConfig) -> str:
    """Text of the change ``kind`` would make (for monitor-mode audit records)."""
    change = plan(decision, kind, network)
    if isinstance(change, Refusal):
        return change.reason
    return change.describe()


class NftAction:
    """One nftables action kind, bound to the enforcer of the daemon's table."""

    def __init__(self, kind: ActionKind, enforcer: Enforcer,
                 network: Callable[[], NetworkConfig]):
        if kind not in ENFORCED_KINDS:
            raise ValueError(f"{kind.value} is not an nftables action")
        self.kind = kind
        self._enforcer = enforcer
        self._network = network  # read at apply time, so a reload is seen at once

    def plan(self, decision: Decision) -> Change | Refusal:
        return plan(decision, self.kind, self._network())

    def describe(self, decision: Decision) -> str:
        """What ``apply`` would change (monitor mode writes this into the record)."""
        return would_be(decision, self.kind, self._network())

    def apply(self, decision: Decision) -> ActionResult:
        (result,) = self.apply_batch([decision])
        return result

    def apply_batch(self, decisions: Sequence[Decision]) -> list[ActionResult]:
        """Apply many decisions; the changes they make go to the kernel in one
        transaction (the action worker hands over everything queued in one tick)."""
        results: list[ActionResult | None] = []
        changes: list[Change] = []
        for decision in decisions:
            change = self.plan(decision)
            if isinstance(change, Refusal):
                self._enforcer.counts["refused"] += 1
                results.append(ActionResult(self.kind, ok=False, changed=False,
                                            detail=change.reason))
            elif decision.mode is not Mode.ENFORCE:
                results.append(ActionResult(
                    self.kind, ok=True, changed=False,
                    detail=f"monitor mode, not installed: would {change.describe()}"))
            else:
                results.append(None)
                changes.append(change)
        applied = iter(self._enforcer.apply_many(changes) if changes else [])
        return [r if r is not None else next(applied) for r in results]


def nft_actions(enforcer: Enforcer,
                network: Callable[[], NetworkConfig]) -> Mapping[ActionKind, NftAction]:
    """The three nftables actions, by the kind a decision names."""
    return {kind: NftAction(kind, enforcer, network) for kind in ENFORCED_KINDS}
