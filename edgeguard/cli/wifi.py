"""``edgeguard wifi status [--json]``: the current BSS, its class, the verdict, the kill switch."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from edgeguard.cli._common import add_socket_option, call_daemon, print_json_lines
from edgeguard.ecs import nest

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("wifi", help="Wi-Fi security floor and VPN kill switch",
                            description="Inspect the Wi-Fi policy of the running daemon.")
    wsub = parser.add_subparsers(dest="wifi_command", metavar="COMMAND")
    status = wsub.add_parser(
        "status", help="current association, its security class and verdict, kill switch",
        description="Show each associated Wi-Fi interface (BSS, security class, AKMs, "
                    "ciphers, verdict), the VPN kill switch and any back-off in force. "
                    "Exit 1 when an association is refused or the kill switch is not in "
                    "the state the policy wants.")
    add_socket_option(status)
    status.add_argument("--json", action="store_true",
                        help="one JSON object per line with ECS field names")
    status.set_defaults(func=_status)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _row(action: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """One --json line: ECS ``event`` (a state row) and the dotted fields, nested."""
    dotted = {k: v for k, v in fields.items() if v is not None}
    dotted.update({"event.kind": "state", "event.category": ["network"],
                   "event.type": ["info"], "event.action": action})
    return nest(dotted)


def _problem(status: Mapping[str, Any]) -> bool:
    refused = any(a.get("edgeguard.wifi.verdict") == "refuse" for a in status["associations"])
    ks = status["kill_switch"]
    mismatch = bool(ks) and ks.get("edgeguard.mode") == "enforce" and (
        (ks.get("edgeguard.vpn.kill_switch.wanted") == "engaged")
        != bool(ks.get("edgeguard.vpn.kill_switch.engaged")))
    return refused or mismatch


def _status(args: argparse.Namespace) -> int:
    status: dict[str, Any] = call_daemon(args, "wifi.status")
    if args.json:
        rows = [*(_row("wifi-association-state", a) for a in status["associations"]),
                _row("vpn-kill-switch-state", status["kill_switch"]),
                *(_row("wifi-backoff-state", b) for b in status["backoff"])]
        print_json_lines(rows)
        return 1 if _problem(status) else 0
    if not status["associations"]:
        print("wifi         not associated")
    for a in status["associations"]:
        g = a.get
        akm = ",".join(g("edgeguard.wifi.akm", ())) or "-"
        print(f"{g('edgeguard.wifi.interface')}        {g('edgeguard.wifi.ssid')!r} "
              f"{g('edgeguard.wifi.bssid')}  {g('edgeguard.wifi.frequency') or '?'} MHz")
        print(f"  security   {g('edgeguard.wifi.security')}  akm {akm}  "
              f"pairwise {','.join(g('edgeguard.wifi.cipher.pairwise', ())) or '-'}  "
              f"mfp {g('edgeguard.wifi.mfp', 'none')}")
        print(f"  verdict    {g('edgeguard.wifi.verdict')}: {g('edgeguard.wifi.reason')}"
              f"{'  (trusted: no VPN needed)' if g('edgeguard.wifi.trusted') else ''}")
    ks = status["kill_switch"]
    if ks:
        engaged = "engaged" if ks["edgeguard.vpn.kill_switch.engaged"] else "lifted"
        up = ", ".join(ks["edgeguard.vpn.interfaces_up"]) or "none"
        print(f"kill switch  {engaged} (policy wants {ks['edgeguard.vpn.kill_switch.wanted']}: "
              f"{ks['edgeguard.vpn.kill_switch.reason']})  mode {ks['edgeguard.mode']}")
        print(f"  table      {ks['edgeguard.vpn.table']}  blocked "
              f"{ks['edgeguard.vpn.kill_switch.blocked_packets']} packets  vpn up: {up}")
        if ks.get("edgeguard.vpn.kill_switch.error"):
            print(f"  error      {ks['edgeguard.vpn.kill_switch.error']}")
    for b in status["backoff"]:
        print(f"back-off     {b['edgeguard.wifi.interface']} {b['edgeguard.wifi.bssid']}  "
              f"{b['edgeguard.wifi.backoff_remaining_s']:.0f}s left")
    watcher = status["watcher"]
    if watcher.get("error"):
        print(f"watcher      {watcher['backend']}: {watcher['error']}")
    return 1 if _problem(status) else 0
