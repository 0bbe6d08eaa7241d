"""``edgeguard report [--since 7d] [--until WHEN] [--html FILE] [DIR]``: what happened, for
a reader who is not an engineer.

Reads the audit segments (DIR, --audit-dir or the policy's audit.directory), verifies the
chain and prints a summary; ``--html FILE`` also writes it as one self-contained page.
Needs no daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgeguard.cli._common import (
    add_audit_dir_option,
    add_policy_options,
    existing_directory,
    policy_files,
)
from edgeguard.policy.load import PolicyError, load_policy
from edgeguard.report.html import render_html
from edgeguard.report.select import TimeSpecError, parse_when
from edgeguard.report.summary import summarise
from edgeguard.report.text import render_text

__all__ = ["register"]

#: the window a report covers unless --since says otherwise
DEFAULT_SINCE = "7d"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "report", help="summarise the audit trail for people (text or one HTML page)",
        description="Summarise the audit trail: findings per day by kind, top offending "
                    "hosts, USB media seen and what was decided, blocks made, Wi-Fi "
                    "refusals and audit health (the chain verified, checkpoints, losses). "
                    "Exit 0, 1 when the chain is broken, 2 when the directory, policy or "
                    "a time cannot be read.")
    parser.add_argument("directory", nargs="?", type=Path, metavar="DIR")
    parser.add_argument("--since", default=DEFAULT_SINCE, metavar="WHEN",
                        help="start of the window: today, an age (1h, 7d) or an ISO "
                             f"date/time (default {DEFAULT_SINCE})")
    parser.add_argument("--until", metavar="WHEN", help="end of the window (default now)")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write the report as one self-contained HTML page")
    add_audit_dir_option(parser)
    add_policy_options(parser)
    parser.set_defaults(func=_report)


def _directory(args: argparse.Namespace) -> Path | None:
    if args.directory is not None:
        return Path(args.directory)
    if args.audit_dir is not None:
        return Path(args.audit_dir)
    try:
        return Path(load_policy(policy_files(args), args.profile).policy.audit.directory)
    except PolicyError as exc:
        print(f"edgeguard report: {exc}", file=sys.stderr)
        return None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _report(args: argparse.Namespace) -> int:
    directory = existing_directory(_directory(args), "edgeguard report")
    if directory is None:
        return 2
    now = time.time()
    try:
        since = parse_when(args.since, now)
        until = now if args.until is None else parse_when(args.until, now)
    except TimeSpecError as exc:
        print(f"edgeguard report: {exc}", file=sys.stderr)
        return 2
    summary = summarise(directory, since, until)
    sys.stdout.write(render_text(summary))
    if args.html is not None:
        try:
            _write_atomically(args.html, render_html(summary))
        except OSError as exc:
            print(f"edgeguard report: {args.html}: {exc.strerror}", file=sys.stderr)
            return 2
    return 0 if summary.health.chain_ok else 1
