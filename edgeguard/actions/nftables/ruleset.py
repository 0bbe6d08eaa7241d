"""The ``inet edgeguard`` table: built from policy, and read back from the kernel.

Layout (docs/enforcement.md has the picture)::

    prerouting (priority raw, before conntrack: a blocked flood never fills conntrack)
        ether saddr @blockmac drop              spoofing actors, by MAC
        ether saddr @limitmac update @metermac { ... limit rate over R/s } drop
        ip saddr @allow4 accept                 allowlist (also checked by the actions)
        ip saddr @block4 drop                   blocked sources
        ip saddr . ip daddr . l4proto . sport . dport @flow4 drop   (and reversed)
        ip saddr . ip daddr . l4proto @pair4 drop                    (and reversed)
        ip saddr @limit4 update @meter4 { ip saddr limit rate over R/s burst B } drop
        ... and the same for ip6
    forward (priority filter)
        ip daddr @block4 drop                   nothing forwarded *to* a blocked LAN host

Prerouting covers traffic to the gateway itself and traffic it forwards, so input
needs no chain of its own. Every timed set has ``flags timeout`` and a ``size`` cap;
the kernel expires elements, and each element's comment carries the finding that
caused it (:class:`Tag`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.runner import Command
from edgeguard.events import ActionKind
from edgeguard.policy.types import IPNetwork

__all__ = [
    "FAMILY",
    "SETS",
    "TABLE",
    "Entry",
    "Key",
    "SetSpec",
    "Tag",
    "describe_key",
    "element_command",
    "parse_entries",
    "parse_rule_counters",
    "rebuild_commands",
    "remove_commands",
]

FAMILY = "inet"
TABLE = "edgeguard"
_FLOW_TYPES = ("inet_proto", "inet_service", "inet_service")
#: nftables caps userdata (the element comment) at 128 bytes.
COMMENT_MAX = 127


@dataclass(frozen=True, slots=True)
class SetSpec:
    """One timed set: what it holds and which action fills it."""

    name: str
    type: str | tuple[str, ...]
    action: ActionKind
    version: int  # 4, 6, or 0 for MAC addresses


SETS: Mapping[str, SetSpec] = {s.name: s for s in (
    SetSpec("blockmac", "ether_addr", ActionKind.BLOCK, 0),
    SetSpec("block4", "ipv4_addr", ActionKind.BLOCK, 4),
    SetSpec("block6", "ipv6_addr", ActionKind.BLOCK, 6),
    SetSpec("flow4", ("ipv4_addr", "ipv4_addr", *_FLOW_TYPES), ActionKind.DROP_FLOW, 4),
    SetSpec("flow6", ("ipv6_addr", "ipv6_addr", *_FLOW_TYPES), ActionKind.DROP_FLOW, 6),
    SetSpec("pair4", ("ipv4_addr", "ipv4_addr", "inet_proto"), ActionKind.DROP_FLOW, 4),
    SetSpec("pair6", ("ipv6_addr", "ipv6_addr", "inet_proto"), ActionKind.DROP_FLOW, 6),
    SetSpec("limitmac", "ether_addr", ActionKind.RATE_LIMIT, 0),
    SetSpec("limit4", "ipv4_addr", ActionKind.RATE_LIMIT, 4),
    SetSpec("limit6", "ipv6_addr", ActionKind.RATE_LIMIT, 6),
)}

#: An address (IP or MAC), a 5-tuple (src, dst, proto, sport, dport), or a host pair
#: (src, dst, proto): all TCP or UDP between a P2P actor and one peer, any ports.
Key = str | tuple[str, str, str, int, int] | tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Tag:
    """What an element's comment records: the rule and the finding behind it."""

    rule_id: str
    finding_kind: str
    finding_id: str

    def comment(self) -> str:
        text = f"{self.rule_id}|{self.finding_kind}|{self.finding_id}"
        raw = text.encode()[:COMMENT_MAX]
        return raw.decode(errors="ignore")

    @classmethod
    def parse(cls, comment: str | None) -> Tag:
        parts = (comment or "").split("|", 2)
        if len(parts) != 3:
            return cls("", "", comment or "")
        return cls(parts[0], parts[1], parts[2])


@dataclass(frozen=True, slots=True)
class Entry:
    """One element of one of our sets, as the kernel reports it."""

    set: str
    key: Key
    timeout: float  # seconds it was added for
    expires: float  # seconds left
    tag: Tag

    @property
    def action(self) -> ActionKind:
        return SETS[self.set].action

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address this entry names (a flow names both ends)."""
        if isinstance(self.key, str):
            return (self.key,)
        return (self.key[0], self.key[1])

    def describe(self) -> str:
        return describe_key(self.key)


def describe_key(key: Key) -> str:
    """``10.0.0.7``, ``tcp 10.0.0.7:51413 <-> 10.0.0.9:6881``, ``tcp 10.0.0.7 -> ...``."""
    if isinstance(key, str):
        return key
    if len(key) == 3:
        return f"{key[2]} {key[0]} <-> {key[1]}"
    src, dst, proto, sport, dport = key
    return f"{proto} {_hostport(src, sport)} <-> {_hostport(dst, dport)}"


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ref(kind: str, **extra: Any) -> dict[str, Any]:
    return {kind: {"family": FAMILY, "table": TABLE, **extra}}


def _elem_value(key: Key) -> Any:
    if isinstance(key, str):
        return key
    return {"concat": list(key)}


def element_command(op: str, set_name: str, keys: Sequence[Key], timeout: float | None = None,
                    tag: Tag | None = None) -> Command:
    """``op`` (add/create/delete) elements of one of our sets, in one command."""
    elems: list[Any] = []
    for key in keys:
        value = _elem_value(key)
        if timeout is not None:
            elem: dict[str, Any] = {"val": value, "timeout": max(1, round(timeout))}
            if tag is not None:
                elem["comment"] = tag.comment()
            value = {"elem": elem}
        elems.append(value)
    return {op: _ref("element", name=set_name, elem=elems)}


def _payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def _match(left: Any, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


def _rule(chain: str, comment: str, *expr: Any) -> Command:
    return {"add": _ref("rule", chain=chain, comment=comment, expr=list(expr))}


_COUNT_DROP = ({"counter": None}, {"drop": None})


def _limit(key: Any, meter: str, cfg: EnforcementConfig) -> dict[str, Any]:
    return {"set": {"op": "update", "elem": key, "set": f"@{meter}", "stmt": [
        {"limit": {"rate": int(cfg.rate_limit), "per": "second",
                   "burst": cfg.rate_limit_burst, "inv": True}}]}}


def _rules(cfg: EnforcementConfig) -> list[Command]:
    pre = "prerouting"
    mac = _payload("ether", "saddr")
    out = [_rule(pre, "block-mac", _match(mac, "@blockmac"), *_COUNT_DROP),
           _rule(pre, "limit-mac", _match(mac, "@limitmac"), _limit(mac, "metermac", cfg),
                 *_COUNT_DROP)]
    for v, ip in ((4, "ip"), (6, "ip6")):
        saddr, daddr = _payload(ip, "saddr"), _payload(ip, "daddr")
        proto = {"meta": {"key": "l4proto"}}
        sport, dport = _payload("th", "sport"), _payload("th", "dport")
        out += [
            _rule(pre, f"allow{v}", _match(saddr, f"@allow{v}"), {"accept": None}),
            _rule(pre, f"block{v}", _match(saddr, f"@block{v}"), *_COUNT_DROP),
            _rule(pre, f"flow{v}", _match({"concat": [saddr, daddr, proto, sport, dport]},
                                          f"@flow{v}"), *_COUNT_DROP),
            _rule(pre, f"flow{v}-reply", _match({"concat": [daddr, saddr, proto, dport, sport]},
                                                f"@flow{v}"), *_COUNT_DROP),
            _rule(pre, f"pair{v}", _match({"concat": [saddr, daddr, proto]}, f"@pair{v}"),
                  *_COUNT_DROP),
            _rule(pre, f"pair{v}-reply", _match({"concat": [daddr, saddr, proto]}, f"@pair{v}"),
                  *_COUNT_DROP),
            _rule(pre, f"limit{v}", _match(saddr, f"@limit{v}"), _limit(saddr, f"meter{v}", cfg),
                  *_COUNT_DROP),
            _rule("forward", f"block{v}-to", _match(daddr, f"@block{v}"), *_COUNT_DROP),
        ]
    return out


def _allow_elements(allowlist: Iterable[IPNetwork]) -> list[Command]:
    out: list[Command] = []
    for version in (4, 6):
        nets = [n for n in allowlist if n.version == version]
        if not nets:
            continue
        elems = [{"prefix": {"addr": str(n.network_address), "len": n.prefixlen}}
                 for n in ipaddress.collapse_addresses(nets)]  # type: ignore[type-var]
        out.append({"add": _ref("element", name=f"allow{version}", elem=elems)})
    return out


def rebuild_commands(cfg: EnforcementConfig, allowlist: Sequence[IPNetwork],
                     carried: Iterable[Entry] = ()) -> list[Command]:
    """One transaction: drop our table if present and build it anew from policy.

    ``carried`` are live elements read back just before (blocks that survive a restart);
    they are re-added with the time they had left.
    """
    size = cfg.set_size
    cmds: list[Command] = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"delete": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
    ]
    for spec in SETS.values():
        cmds.append({"add": _ref("set", name=spec.name, type=_set_type(spec.type),
                                 flags=["timeout"], size=size)})
    for v, addr in ((4, "ipv4_addr"), (6, "ipv6_addr"), ("mac", "ether_addr")):
        if v != "mac":
            cmds.append({"add": _ref("set", name=f"allow{v}", type=addr, flags=["interval"])})
        # The per-source meter: entries idle for a minute are forgotten by the kernel.
        cmds.append({"add": _ref("set", name=f"meter{v}", type=addr, flags=["timeout"],
                                 size=size, timeout=60)})
    cmds.append({"add": _ref("chain", name="prerouting", type="filter", hook="prerouting",
                             prio=-300, policy="accept")})
    cmds.append({"add": _ref("chain", name="forward", type="filter", hook="forward",
                             prio=0, policy="accept")})
    cmds += _rules(cfg)
    cmds += _allow_elements(allowlist)
    cmds += [element_command("add", e.set, (e.key,), e.expires, e.tag) for e in carried]
    return cmds


def _set_type(t: str | tuple[str, ...]) -> str | list[str]:
    return t if isinstance(t, str) else list(t)


def remove_commands() -> list[Command]:
    """Remove our table if it exists (and only ours)."""
    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"delete": {"table": {"family": FAMILY, "name": TABLE}}},
    ]


def _key_of(value: Any) -> Key | None:
    if isinstance(value, str):
        return value
    parts = value.get("concat") if isinstance(value, dict) else None
    if (not isinstance(parts, list) or len(parts) not in (3, 5)
            or not all(isinstance(p, str) for p in parts[:3])
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts[3:])):
        return None
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2])
    return (parts[0], parts[1], parts[2], parts[3], parts[4])


def _ours(body: Any) -> bool:
    return isinstance(body, dict) and body.get("table") == TABLE and body.get("family") == FAMILY


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_entries(listing: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """Our timed sets' elements out of a ``list table``/``list set`` JSON listing.

    Anything not shaped as nft prints it is skipped, never raised on.
    """
    out: list[Entry] = []
    for item in listing:
        body = item.get("set") if isinstance(item, Mapping) else None
        if not _ours(body):
            continue
        assert isinstance(body, dict)
        name = body.get("name")
        if not isinstance(name, str) or name not in SETS:
            continue
        for raw in _list(body.get("elem")):
            elem = raw.get("elem") if isinstance(raw, dict) else None
            if not isinstance(elem, dict):
                continue
            key = _key_of(elem.get("val"))
            if key is None:
                continue
            comment = elem.get("comment")
            out.append(Entry(set=name, key=key, timeout=_seconds(elem.get("timeout")),
                             expires=_seconds(elem.get("expires")),
                             tag=Tag.parse(comment if isinstance(comment, str) else None)))
    return out


def parse_rule_counters(listing: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Packets dropped per rule comment (``block4``, ``flow6-reply``...)."""
    out: dict[str, int] = {}
    for item in listing:
        rule = item.get("rule") if isinstance(item, Mapping) else None
        if not _ours(rule):
            continue
        assert isinstance(rule, dict)
        comment = rule.get("comment")
        if not isinstance(comment, str):
            continue
        for expr in _list(rule.get("expr")):
            counter = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(counter, dict):
                out[comment] = out.get(comment, 0) + int(_seconds(counter.get("packets")))
    return out
