"""``edgeguard audit verify|tail|init|ship``: check the chain, read the log, enrol a key,
ship it to a remote receiver.

``verify`` is meant to run off-host too: it needs only the segment files (and, for
checkpoints, the K0 file exported at enrolment), never the daemon.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from edgeguard.audit.fleet import FleetError, load_keys, verify_fleet
from edgeguard.audit.fleet_output import fleet_line, fleet_row
from edgeguard.audit.follow import follow_lines, last_lines
from edgeguard.audit.keys import AuditKeyError, enrol, read_export
from edgeguard.audit.shipd import ShipDaemon
from edgeguard.audit.verify import VerifyResult, verify_paths
from edgeguard.cli._common import (
    add_audit_dir_option,
    add_policy_options,
    command_group,
    existing_directory,
    policy_files,
)
from edgeguard.ecs import nest
from edgeguard.events import Scalar
from edgeguard.logs import configure
from edgeguard.policy.load import PolicyError, load_policy
from edgeguard.report.line import LineStyle, render_record, use_colour
from edgeguard.report.records import TrailRecord, parse_line
from edgeguard.report.select import SEVERITIES, RecordFilter, TimeSpecError, parse_when
from edgeguard.textsafe import write_styled

if TYPE_CHECKING:
    from edgeguard.audit.config import AuditConfig

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _audit, sub = command_group(subparsers, "audit", "verify, read and enrol the audit trail")

    verify = sub.add_parser(
        "verify", help="check the hash chain (and checkpoints with --key)",
        description="Check the hash chain of the segments (and the checkpoints with --key) "
                    "and name the first bad sequence; with --fleet, every host's chain a "
                    "collector received, one line per host and chain. Exit 0 intact, 1 "
                    "broken (any host not verified), 2 a path or key that cannot be read.")
    verify.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="segment files or audit directories")
    verify.add_argument("--json", action="store_true", help="one JSON object (ECS names)")
    verify.add_argument("--key", type=Path, metavar="FILE",
                        help="the K0 file exported by 'audit init': check every checkpoint")
    verify.add_argument("--against", type=Path, action="append", default=[], metavar="PATH",
                        help="a shipped copy (JSON lines, e.g. rsyslog's file): detects "
                             "records cut from the end of the local log")
    fleet = verify.add_argument_group("fleet verification at the collector (--fleet)")
    fleet.add_argument("--fleet", type=Path, metavar="DIR",
                       help="a collector's directory of received records (any layout: "
                            "grouped by host.name and chain id); docs/shipping.md")
    fleet.add_argument("--keys", type=Path, metavar="DIR",
                       help="the hosts' exported K0 files, named HOST.key: checkpoints "
                            "are verified, and a host with a key but no record is silent")
    fleet.add_argument("--host-copy", action="append", default=[], metavar="HOST=PATH",
                       help="a host's own audit directory (or segment): finds records cut "
                            "at the source (repeatable)")
    fleet.add_argument("--expect", action="append", default=[], metavar="HOST",
                       help="a host that must have sent records (repeatable)")
    verify.set_defaults(func=_verify)

    tail = sub.add_parser(
        "tail", help="print the newest records",
        description="Print the newest audit records that match the filters (--json: the "
                    "records as written, segment headers and checkpoints included), in local "
                    "time unless --utc; segment headers and checkpoints only with --all. "
                    "Monitor-mode records say what would have been done. Colour on a "
                    "terminal unless NO_COLOR is set. Exit 0, or 2 when the directory, "
                    "policy or a time cannot be read.")
    tail.add_argument("directory", nargs="?", type=Path, metavar="DIR")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("-n", "--lines", type=int, default=10, metavar="N")
    tail.add_argument("--json", action="store_true", help="raw records")
    _filter_options(tail)
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
    add_audit_dir_option(ship)
    ship.add_argument("--log-json", action="store_true", help="diagnostics as JSON lines")
    ship.add_argument("--once", action="store_true",
                      help="ship what is on disk now and exit: 0 when delivered, 1 with the "
                           "reason (refused, tls, name-lookup...) on stderr at the first failure")
    ship.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="with --once: give up (exit 1) after this long (default 60)")
    ship.set_defaults(func=_ship)


def _dir_options(parser: argparse.ArgumentParser) -> None:
    add_audit_dir_option(parser)
    add_policy_options(parser)


def _policy_audit(args: argparse.Namespace) -> AuditConfig | None:
    try:
        return load_policy(policy_files(args), args.profile).policy.audit
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
    if args.fleet is not None:
        return _verify_fleet(args)
    if not args.paths:
        print("edgeguard audit verify: give PATH (segments or a directory) or --fleet DIR",
              file=sys.stderr)
        return 2
    if args.keys or args.host_copy or args.expect:
        print("edgeguard audit verify: --keys, --host-copy and --expect need --fleet DIR "
              "(one host: --key FILE, --against PATH)", file=sys.stderr)
        return 2
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


def _verify_fleet(args: argparse.Namespace) -> int:
    name = "edgeguard audit verify --fleet"
    if args.paths or args.against or args.key:
        print(f"{name}: PATH, --against and --key do not apply (use --keys, --host-copy)",
              file=sys.stderr)
        return 2
    copies: dict[str, list[Path]] = {}
    for spec in args.host_copy:
        host, sep, path = str(spec).partition("=")
        if not sep or not host or not path:
            print(f"{name}: --host-copy wants HOST=PATH, not {spec!r}", file=sys.stderr)
            return 2
        copies.setdefault(host, []).append(Path(path))
    missing = [p for p in [args.fleet, args.keys, *(q for v in copies.values() for q in v)]
               if p is not None and not p.exists()]
    not_dirs = [p for p in (args.fleet, args.keys) if p is not None and not p.is_dir()]
    if missing or not_dirs:
        print(f"{name}: no such directory: {(missing or not_dirs)[0]}", file=sys.stderr)
        return 2
    try:
        report = verify_fleet(args.fleet, keys=load_keys(args.keys), host_copies=copies,
                              expect=args.expect, now=time.time())
    except FleetError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    for chain in report.chains:
        if args.json:
            sys.stdout.write(orjson.dumps(nest(fleet_row(chain))).decode() + "\n")
        else:
            print(fleet_line(chain))
    return 0 if report.ok else 1


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


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="WHEN",
                        help="records at or after WHEN: today, yesterday, an age (30m, 1h, "
                             "7d) or an ISO date/time (local unless it names a zone)")
    parser.add_argument("--until", metavar="WHEN", help="records before WHEN (as --since)")
    parser.add_argument("--kind", action="append", default=[], metavar="KIND",
                        help="a finding kind (scan, usb, wifi...), an event.kind (alert, "
                             "event, state, pipeline_error), an action or the first word of "
                             "one (usb: usb-read-only, usb-removed...) (repeatable)")
    parser.add_argument("--severity", choices=SEVERITIES, metavar="LEVEL",
                        help="minor, moderate or severe: that severity and above")
    parser.add_argument("--outcome", action="append", default=[],
                        choices=("success", "failure", "unknown"), help="(repeatable)")
    parser.add_argument("--host", "--address", dest="address", action="append", default=[],
                        metavar="ADDR", help="a source or destination address, or host.name "
                                             "(repeatable)")
    parser.add_argument("--all", action="store_true",
                        help="also segment headers and checkpoints (always with --json)")
    parser.add_argument("--utc", action="store_true", help="times in UTC")


def _record_filter(args: argparse.Namespace, now: float) -> RecordFilter:
    return RecordFilter(
        since=None if args.since is None else parse_when(args.since, now),
        until=None if args.until is None else parse_when(args.until, now),
        kinds=frozenset(args.kind), min_severity=args.severity,
        outcomes=frozenset(args.outcome), addresses=frozenset(args.address),
        include_internal=args.all or args.json)


def _newest(directory: Path, wanted: RecordFilter, count: int) -> list[TrailRecord]:
    """The newest ``count`` matching records: read back from the end, twice as far each
    time, until enough match or the whole trail has been read."""
    if count == 0:
        return []
    window = max(64, count * 4)
    while True:
        lines = last_lines(directory, window)
        found = [rec for rec in map(parse_line, lines) if wanted.matches(rec)]
        if len(found) >= count or len(lines) < window:
            return found[-count:]
        window *= 2


def _tail(args: argparse.Namespace) -> int:
    directory = existing_directory(_audit_dir(args), "edgeguard audit tail")
    if directory is None:
        return 2
    if args.lines < 0:
        print("edgeguard audit tail: -n must be >= 0", file=sys.stderr)
        return 2
    try:
        wanted = _record_filter(args, time.time())
    except TimeSpecError as exc:
        print(f"edgeguard audit tail: {exc}", file=sys.stderr)
        return 2
    style = LineStyle(utc=args.utc, colour=use_colour(sys.stdout))
    for rec in _newest(directory, wanted, args.lines):
        _emit(rec, style, as_json=args.json)
    if args.follow:
        for line in follow_lines(directory):
            rec = parse_line(line)
            if wanted.matches(rec):
                _emit(rec, style, as_json=args.json)
    return 0


def _emit(rec: TrailRecord, style: LineStyle, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(rec.line.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
    else:  # every field escaped by render_record; the colour codes are ours
        write_styled(render_record(rec, style) + "\n")


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
    if not args.once:
        return daemon.run()
    if not daemon.loaded.policy.audit.shipping.syslog.enabled:
        print("edgeguard audit ship: no remote destination enabled (audit.shipping.syslog)",
              file=sys.stderr)
        return 1
    try:
        failures = daemon.once(args.timeout)
    except OSError as exc:  # the audit directory, or TimeoutError: neither delivered nor failed
        print(f"edgeguard audit ship: {exc}", file=sys.stderr)
        return 1
    for failure in failures:
        print(f"edgeguard audit ship: {failure.destination} failed ({failure.cause.value}): "
              f"{failure.error}", file=sys.stderr)
    return 1 if failures else 0
