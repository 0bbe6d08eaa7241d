"""``edgeguard prepare``: the directories the daemon needs, owned as the policy says."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeguard.cli._common import (
    add_audit_dir_option,
    add_policy_options,
    add_socket_option,
    policy_files,
)
from edgeguard.daemon.prepare import prepare
from edgeguard.policy.load import PolicyError, load_policy

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "prepare", help="make the daemon's directories (run as root before the daemon)",
        description="Create the audit, state and control-socket directories and give them "
                    "to audit.file_group and daemon.admin_group (set-group-ID), so the "
                    "daemon itself needs no CAP_CHOWN. The unit runs it as ExecStartPre=+. "
                    "Exit 0 done, 1 a directory could not be prepared, 2 a bad policy.")
    add_policy_options(parser)
    add_audit_dir_option(parser)
    add_socket_option(parser, serve=True)
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="the state directory (default: the policy's "
                             "daemon.state_directory)")
    parser.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(policy_files(args), args.profile).policy
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"edgeguard prepare: {issue}", file=sys.stderr)
        return 2
    try:
        done = prepare(policy, audit_dir=args.audit_dir, control_socket=args.socket,
                       state_dir=args.state_dir)
    except (OSError, KeyError) as exc:
        print(f"edgeguard prepare: {exc}", file=sys.stderr)
        return 1
    for step in done:
        print(f"{step.path}: {step.detail}")
    return 0
