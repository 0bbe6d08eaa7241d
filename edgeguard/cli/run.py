"""``edgeguard run``: the daemon."""

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
from edgeguard.daemon.run import DaemonOptions, StartupError, start
from edgeguard.logs import configure
from edgeguard.policy.load import PolicyError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the enforcement daemon",
                            description="Run the daemon in the foreground (systemd "
                                        "Type=notify) until SIGTERM; SIGHUP reloads the "
                                        "policy. Exit 0 stopped, 2 a bad policy or a host "
                                        "it cannot start on.")
    add_policy_options(parser)
    add_audit_dir_option(parser)
    add_socket_option(parser, serve=True)
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="the state directory (default: the policy's "
                             "daemon.state_directory)")
    parser.add_argument("--no-remote-shipping", dest="ship_remote", action="store_false",
                        help="leave audit shipping to remote receivers (syslog) to `edgeguard "
                             "audit ship`, so this process opens no Internet socket (the "
                             "hardened unit does this)")
    parser.add_argument("--log-json", action="store_true", help="diagnostics as JSON lines")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    configure(verbose=args.verbose, json=args.log_json)
    files = policy_files(args)
    options = DaemonOptions(policy_files=tuple(files), profile=args.profile,
                            rescan_etc=not args.policy,
                            audit_dir=args.audit_dir, control_socket=args.socket,
                            state_dir=args.state_dir, ship_remote=args.ship_remote)
    try:
        return start(options, files)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"edgeguard: {issue}", file=sys.stderr)
        print(f"edgeguard: policy has {len(exc.issues)} error(s); not starting", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"edgeguard: {exc}; not starting", file=sys.stderr)
        return 2
