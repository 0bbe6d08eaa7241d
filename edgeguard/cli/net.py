"""``edgeguard net blocks`` and ``edgeguard net unblock``: the live nftables blocks.

``blocks`` asks the running daemon (control socket command ``net.blocks``); when no
daemon answers it reads the kernel sets itself (root), so blocks kept in the kernel
after a stop are still visible. ``unblock`` goes through the daemon only, because
every unblock must be audited and the audit log is the daemon's.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeguard.actions.nftables.enforcer import entry_fields
from edgeguard.actions.nftables.ruleset import FAMILY, TABLE, parse_entries
from edgeguard.actions.nftables.runner import Nft, NftError
from edgeguard.cli._common import add_socket_option, ecs_row, print_json_lines, print_table
from edgeguard.clock import SystemClock
from edgeguard.daemon.control import ControlError, request

__all__ = ["register"]

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")
_COLUMNS = {"action": "edgeguard.block.action", "target": "edgeguard.block.target",
            "expires_in": "edgeguard.block.expires_in", "rule": "rule.id",
            "finding": "edgeguard.finding.id"}


def _daemon_running(socket_path: Path) -> bool:
    return socket_path.is_socket()


def _kernel_blocks() -> list[dict[str, Any]]:
    try:
        listing = Nft().run([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
    except NftError as exc:
        if "No such file" in str(exc):
            return []
        raise
    now = SystemClock().now()
    return [entry_fields(e, now) for e in parse_entries(listing)]


def _print_blocks(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json_lines(ecs_row("network-block-state", row, category=("network",),
                                 event_type=("denied",)) for row in rows)
        return
    if not rows:
        print("no active blocks")
        return
    table: list[Mapping[str, Any]] = [
        {col: f"{float(row.get(key, 0)):.0f}s" if col == "expires_in" else row.get(key, "")
         for col, key in _COLUMNS.items()} for row in rows]
    print_table(table, list(_COLUMNS))


def _blocks(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] | None = None
    if not args.kernel and _daemon_running(args.socket):
        try:
            rows = list(request(args.socket, "net.blocks", {}))
        except ControlError as exc:
            print(f"edgeguard: {exc}; reading the kernel sets directly", file=sys.stderr)
    if rows is None:
        try:
            rows = _kernel_blocks()
        except NftError as err:
            print(f"edgeguard: cannot read the nftables table: {err}", file=sys.stderr)
            return 1
    _print_blocks(rows, args.json)
    return 0


def _valid_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_MAC.match(text))
    return True


def _unblock(args: argparse.Namespace) -> int:
    if not _valid_address(args.address):
        print(f"edgeguard: {args.address!r} is not an IP or MAC address", file=sys.stderr)
        return 2
    try:
        reply = request(args.socket, "net.unblock", {"address": args.address})
    except ControlError as exc:
        print(f"edgeguard: {exc} (unblocking needs the running daemon: it audits the change)",
              file=sys.stderr)
        return 1
    count = int(reply.get("edgeguard.unblocked", 0))
    if args.json:
        print_json_lines([ecs_row("network-unblock", reply, kind="event",
                                  category=("network",), event_type=("allowed", "end"))])
    else:
        print(f"removed {count} block(s) for {args.address}")
    return 0 if count else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    net = subparsers.add_parser("net", help="network enforcement (nftables blocks)")
    sub = net.add_subparsers(dest="net_command", metavar="NET_COMMAND", required=True)

    blocks = sub.add_parser(
        "blocks", help="list active blocks with reason, finding and expiry",
        description="List the active blocks of inet edgeguard (the offender is source.*) "
                    "with the rule, the finding and the expiry. Exit 0, or 1 when the "
                    "nftables table cannot be read.")
    blocks.add_argument("--json", action="store_true", help="one ECS JSON object per line")
    blocks.add_argument("--kernel", action="store_true",
                        help="read the kernel sets directly, without asking the daemon")
    add_socket_option(blocks)
    blocks.set_defaults(func=_blocks)

    unblock = sub.add_parser(
        "unblock", help="remove the blocks naming ADDR (root, audited)",
        description="Remove every block naming ADDR through the daemon, which audits it. "
                    "Exit 0 removed, 1 nothing removed or no daemon, 2 not an address.")
    unblock.add_argument("address", metavar="ADDR", help="IPv4, IPv6 or MAC address")
    unblock.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_socket_option(unblock)
    unblock.set_defaults(func=_unblock)
