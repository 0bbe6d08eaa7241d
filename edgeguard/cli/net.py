"""``edgeguard net blocks|block|unblock|allow``: the live nftables blocks and exceptions.

``blocks`` asks the running daemon (control socket command ``net.blocks``); when no
daemon answers it reads the kernel sets itself (root), so blocks kept in the kernel
after a stop are still visible. ``block`` and ``unblock`` go through the daemon only,
because every change must be audited and the audit log is the daemon's; an unblock
also ends the repeat suppression of the finding behind the block, so the host's next
offence is acted on again. ``allow`` writes a per-rule exception as a drop-in under
``/etc/edgeguard/policy.d/`` (:mod:`edgeguard.cli._net_allow`), checks the resulting
policy and asks the daemon to reload.
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
from edgeguard.cli._common import (
    EXIT_NO_DAEMON,
    add_socket_option,
    command_group,
    ecs_row,
    print_json_lines,
    print_table,
    report_control_error,
)
from edgeguard.cli._net_allow import register_allow
from edgeguard.clock import SystemClock
from edgeguard.daemon.control import ControlError, request
from edgeguard.policy.types import Duration

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


def _duration(text: str) -> float:
    """``--for`` of block and allow: a duration with a unit (argparse type)."""
    try:
        value = float(Duration.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is shorter than one second")
    return value


def _block(args: argparse.Namespace) -> int:
    if not _valid_address(args.address):
        print(f"edgeguard: {args.address!r} is not an IP or MAC address", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("edgeguard: --reason must say why", file=sys.stderr)
        return 2
    try:
        reply = request(args.socket, "net.block", {
            "address": args.address, "duration": args.duration, "reason": args.reason})
    except ControlError as exc:
        return report_control_error(exc)
    if args.json:
        print_json_lines([ecs_row("network-block", reply, kind="event",
                                  category=("network",), event_type=("denied", "start"))])
    else:
        print(f"blocked {reply.get('edgeguard.block.target', args.address)} for "
              f"{args.duration:g} s: {args.reason}")
    return 0


def _unblock(args: argparse.Namespace) -> int:
    if not _valid_address(args.address):
        print(f"edgeguard: {args.address!r} is not an IP or MAC address", file=sys.stderr)
        return 2
    try:
        reply = request(args.socket, "net.unblock", {"address": args.address})
    except ControlError as exc:
        code = report_control_error(exc)
        if code == EXIT_NO_DAEMON:
            print("edgeguard: unblocking needs the running daemon (it audits the change)",
                  file=sys.stderr)
        return code
    count = int(reply.get("edgeguard.unblocked", 0))
    if args.json:
        print_json_lines([ecs_row("network-unblock", reply, kind="event",
                                  category=("network",), event_type=("allowed", "end"))])
    else:
        print(f"removed {count} block(s) for {args.address}")
    return 0 if count else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _net, sub = command_group(
        subparsers, "net", "network enforcement: blocks, manual blocks, exceptions",
        "Network enforcement: list, add and remove nftables blocks; make per-rule "
        "exceptions. Exit 2 when no action is given.")

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

    block = sub.add_parser(
        "block", help="block ADDR for a while, by hand (root, audited)",
        description="Block every packet from ADDR (IPv4, IPv6 or MAC) for --for, through "
                    "the daemon, which audits the block with who asked and why (rule.id "
                    "manual-block). A block already there is replaced, so the new duration "
                    "holds. An allowlisted address is refused. Exit 0 blocked, 1 refused "
                    "(not root, allowlisted, a monitor-only policy), 2 bad arguments, 3 "
                    "no daemon.")
    block.add_argument("address", metavar="ADDR", help="IPv4, IPv6 or MAC address")
    block.add_argument("--for", dest="duration", type=_duration, required=True,
                       metavar="DURATION", help="how long: 30m, 1h, 7d")
    block.add_argument("--reason", required=True, help="why (goes into the audit record)")
    block.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_socket_option(block)
    block.set_defaults(func=_block)

    unblock = sub.add_parser(
        "unblock", help="remove the blocks naming ADDR (root, audited)",
        description="Remove every block naming ADDR through the daemon, which audits it. "
                    "The findings behind those blocks are no longer suppressed as repeats "
                    "and the host's repeat-offender history is forgotten: a new offence "
                    "is acted on again, from network.block_duration. Exit 0 removed, 1 "
                    "nothing removed or refused, 2 not an address, 3 no daemon.")
    unblock.add_argument("address", metavar="ADDR", help="IPv4, IPv6 or MAC address")
    unblock.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_socket_option(unblock)
    unblock.set_defaults(func=_unblock)

    register_allow(sub, _duration)
