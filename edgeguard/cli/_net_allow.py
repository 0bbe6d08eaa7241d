"""``edgeguard net allow ADDR --rule RULE --for 7d --reason ...``: a per-rule exception.

Writes one drop-in, ``<etc>/policy.d/60-allow-<rule>-<address>.yaml``, holding one
``exceptions:`` entry (id, rule, address, until, reason). Before anything is written:
the rule must exist in the policy in force, the network and the duration must be
within its ``exception_limits`` (or ``--force``), and the file name is built from
characters ``[A-Za-z0-9._-]`` only (others become ``-``) and checked to name a file
directly inside ``policy.d``. Then the policy with the drop-in must load; then the
daemon is asked to reload. The daemon's decision engine audits the exception when it
comes into force (``policy-exception-added``) and when it expires
(``policy-exception-expired``). The same id again replaces the exception (a new expiry
or reason); deleting the file and reloading removes it (audited as
``policy-exception-removed``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from edgeguard.cli._common import (
    EXIT_NO_DAEMON,
    EXIT_REFUSED,
    add_socket_option,
    report_control_error,
)
from edgeguard.clock import SystemClock
from edgeguard.findings import suggest
from edgeguard.policy.exceptions import RuleException
from edgeguard.policy.load import ETC_DIR, PROFILES, PolicyError, load_policy
from edgeguard.policy.types import Timestamp

__all__ = ["drop_in_path", "drop_in_text", "file_part", "register_allow"]

#: Drop-ins sort by name; exceptions come after a site's own numbered files.
_PREFIX = "60-allow-"
#: What a drop-in's file name may be made of (no path separator, no leading dot).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def file_part(text: str) -> str:
    """``text`` as part of a file name: every run of characters outside
    ``[A-Za-z0-9._-]`` becomes ``-``, leading ``.``/``_``/``-`` are dropped; ValueError
    when nothing is left."""
    part = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")
    if not _FILE_NAME.fullmatch(part):
        raise ValueError(f"{text!r} cannot be part of a file name")
    return part


def drop_in_path(etc_dir: Path, exc_id: str) -> Path:
    """Where the drop-in of exception ``exc_id`` goes: a file directly inside
    ``<etc_dir>/policy.d``; ValueError when the name would be anything else."""
    drop_in = etc_dir / "policy.d"
    name = f"{_PREFIX}{file_part(exc_id.removeprefix('allow-'))}.yaml"
    target = drop_in / name
    if not _FILE_NAME.fullmatch(name) or target.parent != drop_in or \
            os.path.normpath(target) != str(target):
        raise ValueError(f"{name!r} is not a file name inside {drop_in}")
    return target


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def exception_id(rule: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """``allow-<rule>-<host or network>``, made of file-name characters only."""
    host = str(network.network_address) if network.prefixlen == network.max_prefixlen \
        else str(network)
    return f"allow-{file_part(rule)}-{file_part(host)}"


def drop_in_text(exc: RuleException, made_by: str) -> str:
    """The drop-in's YAML; every string is JSON-quoted (a valid YAML double-quoted
    scalar), so no reason can add keys or break the file."""
    q = json.dumps
    return (f"# written by `edgeguard net allow` ({made_by}); delete this file and run\n"
            "# `edgeguard reload` to end the exception early.\n"
            "exceptions:\n"
            f"  - id: {q(exc.id)}\n"
            f"    rule: {q(exc.rule)}\n"
            f"    address: {q(str(exc.address))}\n"
            f"    until: {q(exc.until.iso())}\n"
            f"    reason: {q(exc.reason)}\n"
            + ("    override_limits: true  # net allow --force\n" if exc.override_limits
               else ""))


def _layers(etc_dir: Path, new: Path | None) -> list[Path]:
    """The files the daemon will read once ``new`` is in place (as
    :func:`edgeguard.policy.load.default_layers` lists them; None: the files now)."""
    main = etc_dir / "policy.yaml"
    drop_in = etc_dir / "policy.d"
    others = [p for p in drop_in.glob("*.yaml") if p != new] if drop_in.is_dir() else []
    return ([main] if main.exists() else []) + sorted([*others, *([new] if new else [])])


def _write(path: Path, text: str) -> Path:
    """``text`` into a temporary file next to ``path`` (not a ``*.yaml`` name, so no
    loader reads it half-written); returns it."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _check(args: argparse.Namespace, etc_dir: Path, now: float) -> RuleException:
    """The exception asked for, checked against the policy in force before anything is
    written; ValueError (the message to print) when it must not be made."""
    reason = args.reason.strip()
    if not reason:
        raise ValueError("--reason must say why")
    try:
        policy = load_policy(_layers(etc_dir, None), args.profile).policy
    except PolicyError as err:
        raise ValueError(f"the policy in force does not load; fix it first:\n{err}") from None
    known = policy.rule_ids()
    if args.rule not in known:
        raise ValueError(f"no rule {args.rule!r}{suggest(args.rule, sorted(known))}")
    exc = RuleException(exception_id(args.rule, args.address), args.rule, args.address,
                        Timestamp(now + args.duration), reason, override_limits=args.force)
    problem = policy.exception_limits.problem(exc, now)
    if problem is not None:
        raise ValueError(problem.replace("set override_limits: true (net allow --force)",
                                         "use --force"))
    return exc


def _allow(args: argparse.Namespace) -> int:
    etc_dir: Path = args.etc_dir
    try:
        exc = _check(args, etc_dir, SystemClock().now())
        target = drop_in_path(etc_dir, exc.id)
    except ValueError as err:
        print(f"edgeguard: nothing written: {err}", file=sys.stderr)
        return 2
    until = exc.until
    text = drop_in_text(exc, f"uid {os.getuid()}")
    if args.print:
        sys.stdout.write(text)
        return 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = _write(target, text)
    except OSError as err:
        print(f"edgeguard: cannot write {target}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        load_policy([tmp if p == target else p for p in _layers(etc_dir, target)],
                    args.profile)
    except PolicyError as err:
        tmp.unlink()
        print(f"edgeguard: the exception was not written; the policy with it would not "
              f"load:\n{err}", file=sys.stderr)
        return 2
    os.replace(tmp, target)
    print(f"wrote {target}: {args.address} is excepted from rule {args.rule} until "
          f"{until.iso()}")
    if args.no_reload:
        return 0
    return _reload(args, target)


def _reload(args: argparse.Namespace, target: Path) -> int:
    from edgeguard.daemon.control import ControlError, request  # noqa: PLC0415

    try:
        request(args.socket, "reload", {}, timeout=60)
    except ControlError as exc:
        code = report_control_error(exc)
        if code == EXIT_NO_DAEMON:
            print("edgeguard: no daemon answered: the exception applies (and is audited) "
                  "when edgeguard starts", file=sys.stderr)
            return code
        with contextlib.suppress(OSError):
            target.unlink()  # a drop-in the daemon refuses would block every later reload
        print(f"edgeguard: the daemon refused the policy; {target} removed", file=sys.stderr)
        return EXIT_REFUSED
    print("reloaded: the exception is in force (audited as policy-exception-added)")
    return 0


def register_allow(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                   duration: Callable[[str], float]) -> None:
    allow = sub.add_parser(
        "allow", help="except ADDR from one rule for a while (writes a policy drop-in)",
        description="Except ADDR (a host or a CIDR network) from one rule until --for from "
                    "now, for --reason: its findings of that rule are still recorded but "
                    "only logged, not blocked. Writes exceptions[] as a drop-in under "
                    "/etc/edgeguard/policy.d/, checks the policy with it and asks the "
                    "daemon to reload; the daemon audits the exception when it comes into "
                    "force and when it expires. The rule must exist and the network and "
                    "duration be within the policy's exception_limits (or --force); "
                    "nothing is written otherwise. Exit 0 written (and reloaded), 1 the "
                    "daemon refused the reload (the drop-in is removed), 2 bad arguments "
                    "or a policy that would not load (nothing written), 3 written but no "
                    "daemon answered (it applies at the next start).")
    allow.add_argument("address", metavar="ADDR", type=_network,
                       help="IPv4/IPv6 address or CIDR network (the finding's source)")
    allow.add_argument("--rule", required=True, metavar="RULE",
                       help="the rule id (rules[].id, e.g. port-scan; or default-<kind>)")
    allow.add_argument("--for", dest="duration", type=duration, required=True,
                       metavar="DURATION", help="how long: 12h, 7d")
    allow.add_argument("--reason", required=True, help="why (audited)")
    allow.add_argument("--force", action="store_true",
                       help="allow a network wider or a duration longer than the policy's "
                            "exception_limits (default /16 IPv4, /48 IPv6, 90 days); "
                            "written into the entry as override_limits: true")
    allow.add_argument("--print", action="store_true",
                       help="print the drop-in's YAML instead of writing it")
    allow.add_argument("--no-reload", action="store_true",
                       help="write and check the drop-in, but do not ask the daemon")
    allow.add_argument("--etc-dir", type=Path, default=ETC_DIR, metavar="DIR",
                       help=f"the policy directory (default {ETC_DIR}; the drop-in goes "
                            "in its policy.d/)")
    allow.add_argument("--profile", choices=PROFILES, default=None,
                       help="the shipped profile the daemon runs with (checked against it)")
    add_socket_option(allow)
    allow.set_defaults(func=_allow)
