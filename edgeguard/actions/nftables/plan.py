"""A decision mapped to the one nftables change it asks for (or the reason it must not).

Pure functions of the decision and the policy: the enforce-mode actions apply the
:class:`Change`; a monitor-mode pipeline audits :meth:`Change.describe` as the would-be
action. The allowlist is checked here, so no path through the actions can block an
allowlisted host even if a detector or rule forgot it (defence in depth).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from edgeguard.actions.nftables.ruleset import Key, Tag, describe_key
from edgeguard.events import ActionKind, Decision, Endpoint
from edgeguard.net.config import NetworkConfig

__all__ = ["ENFORCED_KINDS", "Change", "Refusal", "plan"]

#: The action kinds this package carries out.
ENFORCED_KINDS = (ActionKind.BLOCK, ActionKind.DROP_FLOW, ActionKind.RATE_LIMIT)

_VERB = {ActionKind.BLOCK: "drop traffic of", ActionKind.DROP_FLOW: "drop flow",
         ActionKind.RATE_LIMIT: "rate-limit"}


@dataclass(frozen=True, slots=True)
class Change:
    """Add ``keys`` to ``set`` for ``timeout`` seconds, tagged with the finding.

    Several keys (a P2P host's peers) go into the set in one transaction.
    """

    action: ActionKind
    set: str
    keys: tuple[Key, ...]
    timeout: float
    tag: Tag

    def describe(self) -> str:
        what = ", ".join(describe_key(k) for k in self.keys[:4])
        if len(self.keys) > 4:
            what += f" and {len(self.keys) - 4} more"
        return (f"{_VERB[self.action]} {what} for {self.timeout:g} s "
                f"(inet edgeguard set {self.set})")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The decision asks for something that must not or cannot be done."""

    action: ActionKind
    reason: str


def _allowlisted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 network: NetworkConfig) -> str | None:
    for net in network.allowlist:
        if ip.version == net.version and ip in net:
            return str(net)
    return None


def _address(ep: Endpoint | None, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if ep is None or ep.ip is None:
        raise ValueError(f"the finding names no {what} address")
    ip = ipaddress.ip_address(ep.ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _tag(decision: Decision) -> Tag:
    f = decision.finding
    return Tag(decision.rule_id, f"{f.kind}/{f.subtype}", f.identifier)


def plan(decision: Decision, kind: ActionKind, network: NetworkConfig) -> Change | Refusal:
    """The change ``kind`` makes for ``decision`` under ``network``'s policy."""
    try:
        return _plan(decision, kind, network)
    except ValueError as exc:
        return Refusal(kind, str(exc))


def _mac_block(decision: Decision, network: NetworkConfig) -> Change | Refusal:
    # The IP of a spoofing finding is the forged one: block the actor's MAC instead.
    finding, kind = decision.finding, ActionKind.BLOCK
    mac = finding.source.mac if finding.source else None
    if not mac:
        return Refusal(kind, f"a {finding.kind} block needs the actor's MAC address")
    mac = mac.lower().replace("-", ":")
    if mac in network.enforcement.mac_allowlist:
        return Refusal(kind, f"refused: MAC {mac} is in network.enforcement.mac_allowlist")
    return Change(kind, "blockmac", (mac,), network.block_duration, _tag(decision))


#: The per-address sets and their durations, by action.
_ADDRESS_SETS: dict[ActionKind, tuple[str, Callable[[NetworkConfig], float]]] = {
    ActionKind.BLOCK: ("block", lambda n: n.block_duration),
    ActionKind.RATE_LIMIT: ("limit", lambda n: n.enforcement.rate_limit_duration),
}


def _mac_limit(decision: Decision, network: NetworkConfig) -> Change | Refusal:
    # A flood from spoofed IPs still comes from one MAC on the LAN: limit that.
    kind, mac = ActionKind.RATE_LIMIT, decision.finding.source.mac  # type: ignore[union-attr]
    assert mac is not None
    mac = mac.lower().replace("-", ":")
    if mac in network.enforcement.mac_allowlist:
        return Refusal(kind, f"refused: MAC {mac} is in network.enforcement.mac_allowlist")
    return Change(kind, "limitmac", (mac,), network.enforcement.rate_limit_duration,
                  _tag(decision))


def _plan(decision: Decision, kind: ActionKind, network: NetworkConfig) -> Change | Refusal:
    finding = decision.finding
    tag = _tag(decision)
    if kind is ActionKind.BLOCK and finding.kind in network.enforcement.mac_block_kinds:
        return _mac_block(decision, network)
    source = finding.source
    if (kind is ActionKind.RATE_LIMIT and source is not None and source.ip is None
            and source.mac):
        return _mac_limit(decision, network)
    src = _address(source, "source")
    if (hit := _allowlisted(src, network)) is not None:
        return Refusal(kind, f"refused: {src} is allowlisted ({hit})")
    if kind is ActionKind.DROP_FLOW:
        return _flow(decision, src, network, tag)
    if kind not in _ADDRESS_SETS:
        return Refusal(kind, f"{kind.value} is not an nftables action")
    prefix, duration = _ADDRESS_SETS[kind]
    return Change(kind, f"{prefix}{src.version}", (str(src),), duration(network), tag)


def _flow(decision: Decision, src: ipaddress.IPv4Address | ipaddress.IPv6Address,
          network: NetworkConfig, tag: Tag) -> Change | Refusal:
    """The exact 5-tuple when the finding has one (source port, one destination with its
    port); else the actor's TCP or UDP with each of its peers, whatever the ports (what
    the BitTorrent detector reports; a client reconnecting from a new port stays cut)."""
    finding, kind = decision.finding, ActionKind.DROP_FLOW
    proto = (finding.transport or "").lower()
    if proto not in ("tcp", "udp"):
        return Refusal(kind, f"a flow drop needs TCP or UDP, not {proto or 'no transport'}")
    peers: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None]] = []
    skipped: list[str] = []
    for dest in finding.destinations:
        if dest.ip is None:
            continue
        dst = _address(dest, "destination")
        if (hit := _allowlisted(dst, network)) is not None:
            skipped.append(f"{dst} is allowlisted ({hit})")
        elif dst.version != src.version:
            skipped.append(f"{dst} is not IPv{src.version}")
        else:
            peers.append((dst, dest.port))
    if not peers:
        why = f": {'; '.join(skipped)}" if skipped else ""
        return Refusal(kind, f"refused: no peer address to cut the flow from{why}")
    duration = network.enforcement.flow_duration
    sport = finding.source.port if finding.source else None
    first, dport = peers[0]
    if sport is not None and len(peers) == 1 and dport is not None:
        number = 6 if proto == "tcp" else 17
        for port in (sport, dport):
            for rule in network.exclusions:  # known-benign (DO, Teredo...): never cut
                if rule.matches(number, port):
                    return Refusal(kind, f"refused: port {port} is excluded as {rule.name}")
        key: Key = (str(src), str(first), proto, sport, dport)
        return Change(kind, f"flow{src.version}", (key,), duration, tag)
    keys = tuple(dict.fromkeys((str(src), str(dst), proto) for dst, _ in peers))
    return Change(kind, f"pair{src.version}", keys, duration, tag)
