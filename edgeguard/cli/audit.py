"""``edgeguard audit verify|tail|init|ship``: check the chain, read the log, enrol a key,
ship it to a remote receiver.

``verify`` is meant to run off-host too: it needs only the segment files (and, for
checkpoints, the K0 file exported at enrolment), never the daemon.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from edgeguard.audit.follow import follow_lines, last_lines, render_line
from edgeguard.audit.keys import AuditKeyError, enrol, read_export
from edgeguard.audit.shipd import ShipDaemon
from edgeguard.audit.verify import VerifyResult, verify_paths
from edgeguard.cli._common import add_policy_options, command_group, policy_files
from edgeguard.ecs import nest
from edgeguard.events import Scalar
from edgeguard.logs import configure
from edgeguard.policy.load import PolicyError, default_layers, load_policy

if TYPE_CHECKING:
    from edgeguard.audit.config import AuditConfig

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _audit, sub = command_group(subparsers, "audit", "verify, read and enrol the audit trail")

    verify = sub.add_parser(
        "verify", help="check the hash chain (and checkpoints with --key)",
        description="Check the hash chain of the segments (and the checkpoints with --key) "
                    "and name the first bad sequence. Exit 0 intact, 1 broken, 2 a path or "
                    "key that cannot be read.")
    verify.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="segment files or audit directories")
    verify.add_argument("--json", action="store_true", help="one JSON object (ECS names)")
    verify.add_argument("--key", type=Path, metavar="FILE",
                        help="the K0 file exported by 'audit init': check every checkpoint")
    verify.add_argument("--against", type=Path, action="append", default=[], metavar="PATH",
                        help="a shipped copy (JSON lines, e.g. rsyslog's file): detects "
                             "records cut from the end of the local log")
    verify.set_defaults(func=_verify)

    tail = sub.add_parser(
        "tail", help="print the newest records",
        description="Print the newest audit records (--json: the records as written). "
                    "Exit 0, or 2 when the directory or policy cannot be read.")
    tail.add_argument("directory", nargs="?", type=Path, metavar="DIR")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("-n", "--lines", type=int, default=10, metavar="N")
    tail.add_argument("--json", action="store_true", help="raw records")
    _dir_options(tail)
    tail.set_defaults(func=_tail)

    init = sub.add_parser("init", help="create the forward-secure key K0 and export it once")
    init.add_argument("--export-key", type=Path, required=True, metavar="FILE",
                      help="where to write K0 for the off-host verifier (mode 0600)")
    init.add_argument("--key-file", type=Path, metavar="PATH",
                      help="the daemon's evolving key (default: audit.key_file of the policy)")
    _dir_options(init)
    init.set_defaults(func=_init)

    ship = sub.add_parser(
        "ship", help="ship the audit trail to the policy's remote receivers (a service)",
        description="Run the remote shippers (audit.shipping.syslog) in the foreground "
                    "until SIGTERM, apart from the daemon, which the hardened unit runs "
                    "with --no-remote-shipping (edgeguard-ship.service runs this). SIGHUP "
                    "reloads the policy. Exit 0 when stopped, 2 on a bad policy.")
    add_policy_options(ship)
    ship.add_argument("--audit-dir", type=Path, metavar="DIR", help="override audit.directory")
    ship.add_argument("--log-json", action="store_true", help="diagnostics as JSON lines")
    ship.set_defaults(func=_ship)


def _dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audit-dir", type=Path, metavar="DIR", help="override audit.directory")
    parser.add_argument("--policy", type=Path, action="append", default=[], metavar="FILE",
                        help="policy files (default: the embedded policy and /etc/edgeguard)")


def _policy_audit(args: argparse.Namespace) -> AuditConfig | None:
    try:
        return load_policy(args.policy or default_layers()).policy.audit
    except PolicyError as exc:
        print(f"edgeguard audit: {exc}", file=sys.stderr)
        return None


def _audit_dir(args: argparse.Namespace) -> Path | None:
    if args.directory is not None:
        return Path(args.directory)
    if args.audit_dir is not None:
        return Path(args.audit_dir)
    section = _policy_audit(args)
    return None if section is None else Path(section.directory)


def _verify(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths + args.against if not p.exists()]
    if missing:
        print(f"edgeguard audit verify: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    key = None
    if args.key is not None:
        try:
            key = read_export(args.key)
        except (OSError, AuditKeyError) as exc:
            print(f"edgeguard audit verify: {args.key}: {exc}", file=sys.stderr)
            return 2
    result = verify_paths(args.paths, key=key, against=args.against)
    _report(result, as_json=args.json)
    return 0 if result.ok else 1


def _report(result: VerifyResult, *, as_json: bool) -> None:
    if as_json:
        out: dict[str, Scalar | list[str]] = {
            "event.kind": "state",
            "event.action": "audit-verify",
            "event.outcome": "success" if result.ok else "failure",
            "edgeguard.chain_id": result.chain_id,
            "edgeguard.audit.records": result.records,
            "edgeguard.audit.segments": result.segments,
            "edgeguard.audit.first_sequence": result.first_sequence,
            "edgeguard.audit.last_sequence": result.last_sequence,
            "edgeguard.audit.last_hash": result.last_hash,
            "edgeguard.audit.checkpoints": result.checkpoints,
            "edgeguard.audit.notes": result.notes,
            "edgeguard.audit.warnings": result.warnings,
        }
        if result.problem is not None:
            out["event.sequence"] = result.problem.sequence
            out["event.reason"] = result.problem.reason
            out["error.message"] = result.problem.detail
            out["file.path"] = result.problem.segment
        sys.stdout.write(orjson.dumps(nest(out)).decode() + "\n")  # type: ignore[arg-type]
        return
    for note in result.notes:
        print(f"note: {note}")
    for warning in result.warnings:
        print(f"WARNING: time/epoch: {warning}")
    if result.problem is None:
        span = f"{result.first_sequence}..{result.last_sequence}" if result.records else "-"
        sealed = f", {result.checkpoints} checkpoints verified" if result.checkpoints else ""
        print(f"ok: {result.records} records in {result.segments} segments, sequences {span}"
              f"{sealed}, chain {result.chain_id}, head {result.last_hash}")
    else:
        p = result.problem
        print(f"BROKEN: first bad sequence {p.sequence}: {p.reason}: {p.detail} ({p.segment})")


def _tail(args: argparse.Namespace) -> int:
    directory = _audit_dir(args)
    if directory is None:
        return 2
    if not directory.is_dir():
        print(f"edgeguard audit tail: {directory}: not a directory", file=sys.stderr)
        return 2
    if args.lines < 0:
        print("edgeguard audit tail: -n must be >= 0", file=sys.stderr)
        return 2
    for line in last_lines(directory, args.lines):
        _emit(line, as_json=args.json)
    if args.follow:
        for line in follow_lines(directory):
            _emit(line, as_json=args.json)
    return 0


def _emit(line: bytes, *, as_json: bool) -> None:
    text = line.decode("utf-8", "replace") if as_json else render_line(line)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _init(args: argparse.Namespace) -> int:
    key_file = args.key_file
    if key_file is None:
        section = _policy_audit(args)
        if section is None:
            return 2
        key_file = Path(section.key_file)
    try:
        key_id = enrol(key_file, args.export_key)
    except (OSError, AuditKeyError) as exc:
        print(f"edgeguard audit init: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled key {key_id}: K0 exported to {args.export_key} (keep it off this host); "
          f"the daemon's evolving key is {key_file}")
    return 0


def _ship(args: argparse.Namespace) -> int:
    configure(verbose=False, json=args.log_json)
    try:
        daemon = ShipDaemon(policy_files(args), args.profile, audit_dir=args.audit_dir)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"edgeguard audit ship: {issue}", file=sys.stderr)
        return 2
    return daemon.run()
