"""The enforcement component: owns the table for the daemon's lifetime.

It builds ``inet edgeguard`` at start (when the policy can enforce at all), polls the
kernel sets every ``network.enforcement.expiry_poll_interval`` to audit expiries,
serves ``net.blocks`` / ``net.block`` / ``net.unblock`` on the control socket (an unblock
also ends the repeat suppression of the finding behind each block it removes, so the
host's next offence is acted on again), and hands the pipeline
its actions (:meth:`EnforcementComponent.actions`). Under a policy that can only
monitor, it removes any table a previous enforcing run left, so monitor changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from edgeguard.actions.nftables.actions import NftAction, nft_actions
from edgeguard.actions.nftables.enforcer import Enforcer, entry_fields
from edgeguard.actions.nftables.ruleset import Entry
from edgeguard.actions.nftables.runner import Nft, NftError
from edgeguard.actions.worker import LoopSink
from edgeguard.daemon.component import (
    Command,
    Component,
    Context,
    Peer,
    changing,
    read_only,
)
from edgeguard.decision import can_enforce as area_can_enforce
from edgeguard.events import ActionKind
from edgeguard.findings import Area
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.model import Policy

__all__ = ["MAX_MANUAL_BLOCK", "EnforcementComponent", "PermissionDenied", "can_enforce",
           "components"]


T = TypeVar("T")

#: The longest block ``edgeguard net block --for`` may ask for (seconds; 365 days).
MAX_MANUAL_BLOCK = 365 * 86400.0


class PermissionDenied(Exception):
    """A control command that changes enforcement came from a non-root peer."""


def can_enforce(policy: Policy) -> bool:
    """Whether any network decision under ``policy`` can be in enforce mode."""
    return area_can_enforce(policy, Area.NETWORK)


class EnforcementComponent:
    name = "net-enforce"
    area = Area.NETWORK

    def __init__(self, policy: Policy, nft: Nft | None = None):
        self.policy = policy
        self.nft = nft or Nft()
        self.enforcer: Enforcer | None = None
        self._ctx: Context | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._actions: Mapping[ActionKind, NftAction] = {}

    @property
    def network(self) -> NetworkConfig:
        return self.policy.network

    def start(self, ctx: Context) -> None:
        self._ctx = ctx
        self.policy = ctx.policy
        # With the daemon's worker, the expiry poll runs on its thread: its records are
        # handed back to the loop.
        audit = ctx.audit if ctx.worker is None else LoopSink(ctx.loop, ctx.audit)
        self.enforcer = Enforcer(self.nft, self.network, audit, ctx.clock)
        self._actions = nft_actions(self.enforcer, lambda: self.network)
        self._apply_policy()
        self._schedule()

    def _apply_policy(self) -> None:
        assert self.enforcer is not None
        if can_enforce(self.policy):
            self.enforcer.reload(self.network)
        else:
            self.enforcer.remove()

    def reload(self, policy: Policy) -> None:
        self.policy = policy
        if self.enforcer is None:
            return
        if self._ctx is not None and self._ctx.worker is not None:
            self._ctx.worker.call(self._apply_policy)  # after the actions already queued
        else:
            self._apply_policy()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.enforcer is not None and can_enforce(self.policy):
            self.enforcer.poll()  # audit what expired since the last poll
            self.enforcer.stop()

    def actions(self) -> Mapping[ActionKind, NftAction]:
        """BLOCK / DROP_FLOW / RATE_LIMIT actions for the pipeline (empty before start)."""
        return self._actions

    def _schedule(self) -> None:
        if self._ctx is None:
            return
        delay = self.network.enforcement.expiry_poll_interval
        self._timer = self._ctx.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        """Run :meth:`_poll` on the action worker (never on the loop: it forks nft), in
        order with the actions queued before it; re-arm the timer."""
        assert self._ctx is not None
        if self._ctx.worker is None:
            self._poll()
            self._schedule()
            return
        self._ctx.worker.call(self._poll).add_done_callback(self._polled)

    def _polled(self, _future: Future[None]) -> None:
        """On the worker thread: the poll is done; re-arm the timer on the loop."""
        if self._ctx is not None:
            self._ctx.loop.call_soon_threadsafe(self._schedule)

    async def _on_worker(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (it forks nft) on the action worker, in order with the actions."""
        if self._ctx is None or self._ctx.worker is None:
            return fn()
        return await asyncio.wrap_future(self._ctx.worker.call(fn))

    def _poll(self) -> None:
        """Read the sets back when an expiry is due or a reconcile is; else only report."""
        assert self.enforcer is not None
        assert self._ctx is not None
        now = self._ctx.clock.monotonic()
        reconcile = now - self._last_read >= self.network.enforcement.reconcile_interval
        try:
            if can_enforce(self.policy) and (reconcile or self.enforcer.expiry_due()):
                self._last_read = now
                self.enforcer.poll()
            self.enforcer.report_full()
        except NftError:
            self.enforcer.counts["poll_errors"] += 1

    def counters(self) -> Mapping[str, int]:
        if self.enforcer is None:
            return {}
        out = {f"nft_{k}": v for k, v in self.enforcer.counts.items()}
        out.update({f"nft_dropped_{k}": v for k, v in self.enforcer.dropped.items()})
        out["nft_active"] = len(self.enforcer.known)
        return out

    def commands(self) -> Mapping[str, Command]:
        return {"net.blocks": read_only(self.cmd_blocks),
                "net.block": changing(self.cmd_block),
                "net.unblock": changing(self.cmd_unblock)}

    async def cmd_blocks(self, peer: Peer, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Active blocks read back from the kernel sets, with reason, finding and expiry."""
        del peer, args
        if self.enforcer is None:
            return []
        now = self._ctx.clock.now() if self._ctx else 0.0
        return [entry_fields(e, now) for e in await self._on_worker(self.enforcer.entries)]

    async def cmd_block(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        """Block ``args["address"]`` for ``args["duration"]`` seconds because of
        ``args["reason"]``; root only, audited (the block itself and the command)."""
        if peer.uid != 0:
            raise PermissionDenied("net.block is for root only")
        address = str(args.get("address", "")).strip()
        reason = str(args.get("reason", "")).strip()
        duration = args.get("duration")
        if not isinstance(duration, int | float) or isinstance(duration, bool) \
                or not 1 <= duration <= MAX_MANUAL_BLOCK:
            raise ValueError(f"net.block needs a duration from 1 s to {MAX_MANUAL_BLOCK:g} s")
        if not address or not reason:
            raise ValueError("net.block needs an address and a reason")
        if self.enforcer is None or not can_enforce(self.policy):
            raise ValueError("the policy cannot enforce network decisions (monitor mode): "
                             "there is no nftables table to block in")
        enforcer = self.enforcer
        change = enforcer.manual_change(address, float(duration), reason)
        user = f"uid={peer.uid} pid={peer.pid}"
        result = await self._on_worker(lambda: enforcer.block(change, user, reason))
        if not result.ok:
            raise ValueError(result.detail)
        fields = entry_fields(Entry(change.set, change.keys[0], change.timeout,
                                    change.timeout, change.tag))
        return {**fields, "event.reason": reason}

    async def cmd_unblock(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        """Remove every block naming ``args["address"]``; root only, audited."""
        if peer.uid != 0:
            raise PermissionDenied("net.unblock is for root only")
        address = str(args.get("address", "")).strip()
        if not address or self.enforcer is None:
            raise ValueError("net.unblock needs an address (IPv4, IPv6 or MAC)")
        enforcer = self.enforcer
        gone = await self._on_worker(
            lambda: enforcer.unblock(address, user=f"uid={peer.uid} pid={peer.pid}"))
        decider = self._ctx.decider if self._ctx is not None else None
        if decider is not None:
            for entry in gone:  # the host's next finding is new, not a repeat
                decider.forget(entry.tag.finding_kind.partition("/")[0], entry.tag.finding_id)
        if self._ctx is not None:
            # ... and the detectors' history of it goes too, so a fresh offence is
            # detected at all (a closed scan is otherwise not reported again for 1 h)
            self._ctx.forgetting.forget(
                [address, *(e.key for e in gone if isinstance(e.key, str))])
        return {"edgeguard.unblocked": len(gone),
                "edgeguard.block.targets": [e.describe() for e in gone]}


def components(policy: Policy) -> list[Component]:
    """The enforcement component when the network section is enabled."""
    return [EnforcementComponent(policy)] if policy.network.enabled else []
