"""Building policies, findings and the decide -> act -> audit path for the nft tests.

The pipeline is the daemon's own (:class:`edgeguard.daemon.pipeline.Pipeline`): the
decision engine, then each nftables action inside ``audited``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from edgeguard.actions.nftables.actions import NftAction, nft_actions
from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.enforcer import Enforcer
from edgeguard.actions.nftables.runner import Nft
from edgeguard.audit.sink import MemorySink
from edgeguard.clock import SystemClock
from edgeguard.daemon.pipeline import Pipeline as DaemonPipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import (
    ActionKind,
    ActionResult,
    AuditRecord,
    Endpoint,
    EventKind,
    Finding,
    Mode,
    Outcome,
    Severity,
)
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.model import Policy, RuleConfig
from edgeguard.policy.types import Duration


def network(allow: tuple[str, ...] = (), block: float = 3, **enf: Any) -> NetworkConfig:
    enf.setdefault("keep_table_on_stop", False)
    return NetworkConfig(
        enabled=True, allowlist=tuple(ipaddress.ip_network(a) for a in allow),
        block_duration=Duration(block), enforcement=EnforcementConfig(**enf))


def policy(net: NetworkConfig, mode: Mode = Mode.ENFORCE,
           actions: tuple[ActionKind, ...] = (ActionKind.BLOCK,)) -> Policy:
    rules = tuple(RuleConfig(id=f"{kind}-rule", kind=kind, actions=actions,
                             suppress_for=Duration(1))
                  for kind in ("scan", "bittorrent", "arp-spoof", "flood"))
    return Policy(mode=mode, rules=rules, network=net)


def scan_finding(src: str, n: int = 0, mac: str | None = None, kind: str = "scan",
                 dst: str = "10.77.2.2", sport: int | None = None, dport: int | None = None,
                 transport: str | None = "tcp") -> Finding:
    return Finding(kind=kind, subtype="syn", message=f"{src} probed ports",
                   identifier=f"{kind}:{src}:{n}", severity=Severity.SEVERE,
                   source=Endpoint(ip=src, mac=mac, port=sport),
                   destinations=(Endpoint(ip=dst, port=dport),), transport=transport)


class Pipeline:
    """The daemon's own pipeline (decide -> nft actions -> audit) on a memory sink."""

    def __init__(self, nft: Nft, pol: Policy):
        self.sink = MemorySink()
        self.clock = SystemClock()
        self.policy = pol
        self.engine = DecisionEngine(pol, self.clock)
        self.enforcer = Enforcer(nft, pol.network, self.sink, self.clock)
        self.actions: dict[ActionKind, NftAction] = dict(
            nft_actions(self.enforcer, lambda: self.policy.network))
        self.pipeline = DaemonPipeline(self.engine, self.sink, self.actions)

    def submit(self, finding: Finding) -> list[ActionResult]:
        """Submit like a detector does; return what each action reported, from its record."""
        seen = len(self.sink.records)
        self.pipeline.submit(finding)
        return [_result(r) for r in self.sink.records[seen:] if r.kind is EventKind.EVENT]

    def records(self, action: str) -> list[Any]:
        return [r for r in self.sink.records if r.action == action]


def _result(record: AuditRecord) -> ActionResult:
    fields = record.fields
    detail = fields.get("edgeguard.action.detail", fields.get("error.message", ""))
    return ActionResult(ActionKind(record.action), ok=record.outcome is Outcome.SUCCESS,
                        changed=bool(fields["edgeguard.action.changed"]), detail=str(detail))
