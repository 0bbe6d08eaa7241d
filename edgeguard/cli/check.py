"""``edgeguard check [FILE…]``: validate policy files without running anything.

Besides the schema, the policy is checked against this host: every interface
``network.interfaces`` names must exist here (the error names the file and line that
named it and lists the interfaces the host has), and a policy that enables the network
watch must name at least one (the gateway profile names none on purpose: there is no
interface name that is right on every gateway). ``--no-host`` skips these host checks,
for a policy written for another machine.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgeguard.cli._common import add_policy_options, policy_files
from edgeguard.policy.load import LoadedPolicy, PolicyError, load_policy, shipped_policy

if TYPE_CHECKING:  # the parser and the model load only when used (docs/startup.md)
    from edgeguard.policy.convert import PolicyIssue
    from edgeguard.policy.yamltree import Node

__all__ = ["host_interfaces", "host_issues", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check", help="validate policy files",
        description="Validate policy files layered on the embedded default; print every "
                    "error with file, line and field. The interfaces network.interfaces "
                    "names must exist on this host (--no-host: skip that). Exit 0 valid, "
                    "2 invalid.")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE")
    parser.add_argument("--reference", action="store_true",
                        help="print the policy reference (every key, unit, default) as Markdown")
    parser.add_argument("--no-host", dest="host", action="store_false",
                        help="do not check the policy against this host's interfaces")
    add_policy_options(parser)
    parser.set_defaults(func=_check)


def host_interfaces() -> list[str]:
    """The network interfaces this host has now, by name."""
    return sorted(name for _index, name in socket.if_nameindex())


def _interfaces_node(files: Sequence[Path], profile: str | None) -> Node | None:
    """``network.interfaces`` of the merged layers, with the marks of who set it."""
    from edgeguard.policy.yamltree import PolicySyntaxError, merge, parse_yaml  # noqa: PLC0415
    layers = [shipped_policy("default")]
    if profile is not None and profile != "default":
        layers.append(shipped_policy(profile))
    layers += [(str(p), p.read_bytes()) for p in files]
    tree: Node | None = None
    for name, data in layers:
        try:
            node = parse_yaml(data, name)
        except PolicySyntaxError:
            return None  # load_policy already refused it
        tree = node if tree is None else merge(tree, node)
    for key in ("network", "interfaces"):
        if tree is None or not isinstance(tree.value, dict):
            return None
        tree = tree.value.get(key)
    return tree


def host_issues(loaded: LoadedPolicy, files: Sequence[Path], profile: str | None,
                present: Sequence[str]) -> list[PolicyIssue]:
    """What in ``loaded`` cannot work on a host whose interfaces are ``present``."""
    net = loaded.policy.network
    if not net.enabled:
        return []
    from edgeguard.policy.convert import PolicyIssue  # noqa: PLC0415
    from edgeguard.policy.yamltree import Mark, Node  # noqa: PLC0415
    node = _interfaces_node(files, profile)
    where = node.mark if node is not None else Mark(loaded.sources[-1], 0, 0)
    have = ", ".join(name for name in present if name != "lo") or "none"
    if not net.interfaces:
        return [PolicyIssue(where, "network.interfaces",
                            "the network watch is enabled but names no interface: set "
                            "the LAN side in /etc/edgeguard/policy.yaml, e.g. "
                            f"`network: {{interfaces: [NAME]}}` (this host has: {have})")]
    items = node.value if node is not None and isinstance(node.value, list) else []
    marks = {str(item.value): item.mark for item in items if isinstance(item, Node)}
    return [PolicyIssue(marks.get(name, where), "network.interfaces",
                        f"no interface {name!r} on this host (it has: {have})")
            for name in net.interfaces if name not in present]


def _check(args: argparse.Namespace) -> int:
    if args.reference:
        from edgeguard.policy.reference import render_reference  # noqa: PLC0415
        sys.stdout.write(render_reference())
        return 0
    files = list(args.files) + list(args.policy) if (args.files or args.policy) \
        else policy_files(args)
    try:
        loaded = load_policy(files, args.profile)
        issues = host_issues(loaded, files, args.profile, host_interfaces()) \
            if args.host else []
        if issues:
            raise PolicyError(issues)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} error(s)", file=sys.stderr)
        return 2
    print(f"policy OK ({', '.join(loaded.sources)}); digest {loaded.digest}")
    return 0
