"""``edgeguard replay FILE.pcap[ng] [--json] [--policy FILE] [--audit DIR]``.

Runs a capture file through the same filter semantics and detectors as live capture and
prints the findings (``--json``: one ECS object per line). With ``--audit DIR`` each
finding also goes through the decision engine into a hash-chained audit log in DIR
(monitor mode unless the policy says otherwise; replay never acts). Exit 1 when there
are findings, 0 when there are none, 2 for a file or policy that cannot be read.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgeguard.cli._common import add_audit_dir_option, add_policy_options, print_json_lines

if TYPE_CHECKING:  # start-up: the decision path (structlog, asyncio) only with --audit,
    # the detectors only when a file is replayed (not for the parser or --help), ECS
    # only with --json, the whole policy only when a file or --audit needs it
    from edgeguard.audit.sink import AuditSink
    from edgeguard.daemon.pipeline import Pipeline
    from edgeguard.events import Finding
    from edgeguard.net.config import NetworkConfig
    from edgeguard.net.replay import ReplayResult
    from edgeguard.policy.model import Policy

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay", help="run a pcap/pcapng file through the network detectors",
        description="Apply the capture filter, decoders and detectors to a capture file and "
                    "print the findings. Exit 1 findings, 0 none, 2 input error. Capture "
                    "times outside years 1..9999 (a damaged or forged header) are written "
                    "clamped and counted (timestamps_clamped).")
    parser.add_argument("file", type=Path, metavar="FILE.pcap[ng]")
    parser.add_argument("--json", action="store_true", help="one ECS JSON object per line")
    add_audit_dir_option(parser, "--audit",
                         help_text="also decide and write an audit log into DIR (never acts)")
    parser.add_argument("--counters", action="store_true",
                        help="print filter/decoder/detector counters to stderr at the end")
    parser.add_argument("--progress-after", type=float, default=1.0, metavar="SECONDS",
                        help="on a terminal, show frames, bytes, rate and time left once "
                             "the replay has run this long (default 1; 0 at once)")
    add_policy_options(parser)
    parser.set_defaults(func=_replay)


def _line(finding: Finding) -> str:
    src = finding.source
    actor = (src.ip or src.mac or "?") if src is not None else "?"
    dests = ",".join(d.ip or d.mac or "?" for d in finding.destinations[:4])
    more = f"+{len(finding.destinations) - 4}" if len(finding.destinations) > 4 else ""
    return (f"{finding.kind}/{finding.subtype}  {actor} -> {dests}{more}  "
            f"count {finding.count}  {finding.message}")


def _show(finding: Finding, *, as_json: bool, now: float, host: str) -> None:
    if as_json:
        from edgeguard.ecs import finding_record, nest, record_fields  # noqa: PLC0415

        stamp = finding.last_seen or now
        print_json_lines([nest(record_fields(finding_record(finding), stamp, host))])
    else:
        print(_line(finding), flush=True)


def _policy(args: argparse.Namespace,
            ) -> tuple[NetworkConfig, str | None, Policy | None] | None:
    """The network section, ``daemon.host_name`` and, when a file or ``--audit`` needs
    it, the whole policy (else ``None``: the shipped policy's parts, precompiled).
    ``None``: the policy cannot be used (every issue printed)."""
    if not args.policy and args.audit_dir is None:
        from edgeguard.policy.precompiled import shipped_network  # noqa: PLC0415

        parts = shipped_network(args.profile)
        if parts is not None:
            return parts[0], parts[1], None
    from edgeguard.policy.load import PolicyError, load_policy  # noqa: PLC0415

    try:
        policy = load_policy(list(args.policy), args.profile).policy
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None
    return policy.network, policy.daemon.host_name, policy


def _replay(args: argparse.Namespace) -> int:
    from edgeguard.ecs_time import timestamp_in_range  # noqa: PLC0415 - see above
    from edgeguard.net.pcapfile import CaptureFormatError  # noqa: PLC0415
    from edgeguard.net.replay import PacketClock, ReplayResult, iter_findings  # noqa: PLC0415
    from edgeguard.progress import FrameProgress  # noqa: PLC0415

    loaded = _policy(args)
    if loaded is None:
        return 2
    network, host_name, policy = loaded
    clock = PacketClock()
    host = host_name or socket.gethostname()
    pipeline: Pipeline | None = None
    writer = None
    if args.audit_dir is not None:
        assert policy is not None  # --audit loads the whole policy
        from edgeguard.audit.writer import AuditWriter  # noqa: PLC0415 - only with --audit
        from edgeguard.daemon.pipeline import Pipeline  # noqa: PLC0415
        from edgeguard.decision import DecisionEngine  # noqa: PLC0415

        writer = AuditWriter(args.audit_dir, clock=clock, host=host)
        # replay decides and records, it never changes the system: every decision is in
        # monitor mode whatever the policy's rules and sections say, and no action runs
        sink: AuditSink = writer
        pipeline = Pipeline(DecisionEngine(policy, clock, force_monitor=True), sink)
    result = ReplayResult()
    count = clamped = 0
    try:
        progress = FrameProgress(args.file.stat().st_size, sys.stderr,  # a TTY only
                                 show_after=max(0.0, args.progress_after))
        for finding in progress.around(iter_findings(args.file, network, clock,
                                                     result, watch=progress.watch)):
            count += 1
            clamped += not all(timestamp_in_range(t) for t in (finding.first_seen or 0.0,
                                                                finding.last_seen or 0.0))
            _show(finding, as_json=args.json, now=clock.now(), host=host)
            if pipeline is not None:
                pipeline.submit(finding)
    except BrokenPipeError:
        raise  # the reader went away (`| head -1`): main() ends quietly
    except (CaptureFormatError, OSError) as exc:
        print(f"edgeguard replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.close()
    _report(args, result, clamped)
    return 1 if count else 0


def _report(args: argparse.Namespace, result: ReplayResult, clamped: int) -> None:
    """Clamped capture times always (stderr); all counters with ``--counters``."""
    if clamped:
        print(f"edgeguard replay: {clamped} finding(s) with capture times outside years "
              "1..9999 (a damaged or forged header); their timestamps are clamped",
              file=sys.stderr)
    if args.counters:
        for key, value in {**result.counters, "timestamps_clamped": clamped}.items():
            print(f"{key} {value}", file=sys.stderr)
