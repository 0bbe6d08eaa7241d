"""The VPN kill switch (Mullvad's model) as one nftables table, via the JSON API.

Off trusted networks the table ``inet edgeguard_vpn`` drops every packet leaving the
machine (output) or crossing it (forward) unless it goes out through loopback or a VPN
interface, is DHCP / IPv6 neighbour discovery, goes to a configured VPN endpoint, or to
a configured LAN. DNS (port 53) is dropped on every other interface, so names resolve
only through the tunnel. The match is on the *outgoing interface*, so ``ping -I wlan0``
and SO_BINDTODEVICE sockets are caught like everything else, and because the rules name
interfaces (``wg*``) rather than addresses, they hold while the tunnel is down or coming
up. The table is kernel state: it outlives the daemon (a crash leaves it engaged) and is
removed only by :meth:`KillSwitch.lift` (a trusted network, or the policy turning it off).

Every change is one ``nft -j -f -`` transaction: the table is added, flushed and refilled
atomically, so there is never a moment with a half-built rule set. It is our own table;
``inet edgeguard`` (blocks of scanners, P2P) belongs to the enforcement feature, and a
drop in either base chain is final, so the two never weaken each other.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from typing import Any

from edgeguard.events import ActionKind, ActionResult
from edgeguard.wifi.config import VpnConfig

__all__ = ["NFT", "TABLE", "KillSwitch", "KillSwitchState", "digest_of", "ruleset"]

NFT = "/usr/sbin/nft"
TABLE = "edgeguard_vpn"
FAMILY = "inet"
LEAK_COMMENT = "edgeguard: blocked outside the VPN"

Json = dict[str, Any]


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def _rule(chain: str, *expr: Json, comment: str | None = None) -> Json:
    rule: Json = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": list(expr)}
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


ACCEPT: Json = {"accept": None}
DROP: Json = {"drop": None}
COUNTER: Json = {"counter": None}


def _output_rules(cfg: VpnConfig, digest: str) -> list[Json]:
    rules = [_rule("output", _match(_meta("oifname"), "lo"), ACCEPT)]
    rules += [_rule("output", _match(_meta("oifname"), name), ACCEPT, comment="vpn interface")
              for name in cfg.interfaces]
    # DNS leaves only through the tunnel (accepted above); drop it everywhere else before
    # any endpoint or LAN exception could let it out.
    rules.append(_rule("output", _match(_meta("l4proto"), {"set": ["udp", "tcp"]}),
                       _match(_payload("th", "dport"), 53), COUNTER, DROP,
                       comment="dns outside the vpn"))
    for ep in cfg.endpoints:
        proto = "ip" if ep.ip.version == 4 else "ip6"
        rules.append(_rule("output", _match(_payload(proto, "daddr"), str(ep.ip)),
                           _match(_meta("l4proto"), ep.protocol),
                           _match(_payload("th", "dport"), ep.port), ACCEPT,
                           comment="vpn endpoint"))
    if cfg.allow_dhcp:
        rules.append(_rule("output", _match(_meta("l4proto"), "udp"),
                           _match(_payload("udp", "sport"), 68),
                           _match(_payload("udp", "dport"), 67), ACCEPT, comment="dhcp"))
        rules.append(_rule("output", _match(_meta("l4proto"), "udp"),
                           _match(_payload("udp", "sport"), 546),
                           _match(_payload("udp", "dport"), 547), ACCEPT, comment="dhcpv6"))
        rules.append(_rule("output", _match(_payload("icmpv6", "type"), {"set": [
            "nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert"]}), ACCEPT,
            comment="ipv6 neighbour discovery"))
    for net in cfg.allow_lan:
        proto = "ip" if net.version == 4 else "ip6"
        rules.append(_rule("output", _match(_payload(proto, "daddr"), {"prefix": {
            "addr": str(net.network_address), "len": net.prefixlen}}), ACCEPT, comment="lan"))
    rules.append(_rule("output", COUNTER, comment=f"{LEAK_COMMENT} {digest}".strip()))
    return rules


def _forward_rules(cfg: VpnConfig) -> list[Json]:
    rules = []
    for name in cfg.interfaces:
        rules.append(_rule("forward", _match(_meta("oifname"), name), ACCEPT))
        rules.append(_rule("forward", _match(_meta("iifname"), name),
                           _match({"ct": {"key": "state"}}, ["established", "related"], "in"),
                           ACCEPT))
    rules.append(_rule("forward", COUNTER, comment=LEAK_COMMENT))
    return rules


def ruleset(cfg: VpnConfig) -> Json:
    """The whole table as one transaction: add, flush, chains with policy drop, rules.

    The last output rule's comment carries a digest of the rule set, so re-engaging an
    unchanged switch is a no-op that keeps its counters.
    """
    digest = hashlib.sha256(json.dumps(_ruleset(cfg, ""), sort_keys=True).encode())
    return _ruleset(cfg, "sha256:" + digest.hexdigest()[:16])


def digest_of(doc: Json) -> str | None:
    for item in doc.get("nftables", []):
        comment = item.get("add", {}).get("rule", {}).get("comment", "")
        if comment.startswith(LEAK_COMMENT + " "):
            return str(comment[len(LEAK_COMMENT) + 1:])
    return None


def _ruleset(cfg: VpnConfig, digest: str) -> Json:
    table = {"family": FAMILY, "name": TABLE}
    chains = [{"add": {"chain": {"family": FAMILY, "table": TABLE, "name": hook,
                                 "type": "filter", "hook": hook, "prio": 0,
                                 "policy": "drop"}}} for hook in ("output", "forward")]
    commands = [{"add": {"table": table}}, {"flush": {"table": table}}, *chains,
                *_output_rules(cfg, digest), *_forward_rules(cfg)]
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    engaged: bool
    blocked_packets: int = 0
    error: str | None = None
    digest: str | None = None


class KillSwitch:
    """Engage, lift and read the kill-switch table. Every call is idempotent."""

    def __init__(self, nft: str = NFT, timeout: float = 10.0) -> None:
        self.nft = nft
        self.timeout = timeout

    def _run(self, args: list[str], payload: Json | None = None,
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - an argument list with an absolute path
            [self.nft, *args], input=json.dumps(payload) if payload is not None else None,
            capture_output=True, text=True, timeout=self.timeout, check=False,
        )

    def _apply(self, payload: Json) -> str | None:
        try:
            done = self._run(["-j", "-f", "-"], payload)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{type(exc).__name__}: {exc}"
        if done.returncode == 0:
            return None
        return done.stderr.strip() or f"nft exit {done.returncode}"

    def engage(self, cfg: VpnConfig) -> ActionResult:
        before = self.state()
        wanted = ruleset(cfg)
        if before.engaged and before.digest is not None and before.digest == digest_of(wanted):
            return ActionResult(ActionKind.BLOCK, ok=True, changed=False,
                                detail="kill switch already engaged")
        error = self._apply(wanted)
        if error is not None:
            return ActionResult(ActionKind.BLOCK, ok=False, detail=f"kill switch: {error}")
        return ActionResult(ActionKind.BLOCK, ok=True, changed=not before.engaged,
                            detail=f"kill switch engaged (table {FAMILY} {TABLE})")

    def lift(self) -> ActionResult:
        before = self.state()
        table = {"family": FAMILY, "name": TABLE}
        # add-then-delete in one transaction: deleting works whether or not it existed
        error = self._apply({"nftables": [{"add": {"table": table}},
                                          {"delete": {"table": table}}]})
        if error is not None:
            return ActionResult(ActionKind.BLOCK, ok=False, detail=f"kill switch: {error}")
        return ActionResult(ActionKind.BLOCK, ok=True, changed=before.engaged,
                            detail="kill switch lifted")

    def state(self) -> KillSwitchState:
        try:
            done = self._run(["-j", "list", "table", FAMILY, TABLE])
        except (OSError, subprocess.TimeoutExpired) as exc:
            return KillSwitchState(False, error=f"{type(exc).__name__}: {exc}")
        if done.returncode != 0:
            missing = "No such file" in done.stderr
            return KillSwitchState(False, error=None if missing else done.stderr.strip())
        blocked = 0
        digest = None
        try:
            items = json.loads(done.stdout).get("nftables", [])
        except json.JSONDecodeError:
            return KillSwitchState(True, error="nft printed no valid JSON")
        for item in items:
            rule = item.get("rule")
            comment = str(rule.get("comment", "")) if rule else ""
            if not comment.startswith(LEAK_COMMENT):
                continue
            if rule.get("chain") == "output" and " " in comment[len(LEAK_COMMENT):]:
                digest = comment[len(LEAK_COMMENT) + 1:]
            for expr in rule.get("expr", []):
                counter = expr.get("counter") if isinstance(expr, dict) else None
                if isinstance(counter, dict):
                    blocked += int(counter.get("packets", 0))
        return KillSwitchState(True, blocked_packets=blocked, digest=digest)
