"""``edgeguard install --profile …`` / ``edgeguard uninstall``: system files in place.

The Python package itself is installed by pip (or a Debian package); this puts the udev
rules, the systemd unit, a starting policy and the audit directory around it and enables
the service. See docs/install.md for upgrade and rollback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgeguard.cli._common import print_json_lines
from edgeguard.install import Installer, InstallError, Step, default_exec
from edgeguard.policy.load import PROFILES

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inst = sub.add_parser(
        "install", help="install udev rules, the systemd unit and /etc/edgeguard for a profile",
        description="Install the udev rules, the systemd unit, a starting /etc/edgeguard/"
                    "policy.yaml naming the profile and the audit directory, then enable "
                    "the service and reload udev. Idempotent; an existing policy.yaml is "
                    "kept. With --root nothing outside DIR is touched. Exit 0 done, 1 a "
                    "step failed, 2 not root for / or a file that cannot be written.")
    inst.add_argument("--profile", choices=PROFILES, required=True)
    inst.add_argument("--root", "--prefix", dest="root", type=Path, default=Path("/"),
                      metavar="DIR", help="install below DIR instead of / (images, tests)")
    inst.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                      help="command the unit runs (default: the edgeguard script on PATH)")
    inst.add_argument("--json", action="store_true", help="one JSON object per step")
    inst.set_defaults(func=_install)
    uninst = sub.add_parser(
        "uninstall", help="remove what install put in place (the audit log stays)",
        description="Disable the service and remove the files install created; keep the "
                    "audit log and a policy.yaml changed since install unless --purge. "
                    "Exit 0 done, 1 a step failed, 2 not root for / or an I/O error.")
    uninst.add_argument("--root", "--prefix", dest="root", type=Path, default=Path("/"),
                        metavar="DIR")
    uninst.add_argument("--purge", action="store_true",
                        help="also remove the audit log, state and the policy file")
    uninst.add_argument("--json", action="store_true", help="one JSON object per step")
    uninst.set_defaults(func=_uninstall)


def _report(steps: list[Step], as_json: bool) -> int:
    if as_json:
        print_json_lines({"event": {"kind": "event", "action": f"install-{s.action}",
                                    "outcome": "failure" if s.action == "failed"
                                    else "success"},
                          "file": {"path": s.target}, "message": s.detail} for s in steps)
    else:
        for s in steps:
            print(f"{s.action:<9} {s.target}" + (f"  ({s.detail})" if s.detail else ""))
    return 1 if any(s.action == "failed" for s in steps) else 0


def _check_root(root: Path) -> int | None:
    if root.resolve() == Path("/") and os.geteuid() != 0:
        print("edgeguard: installing into / needs root (or use --root DIR)", file=sys.stderr)
        return 2
    return None


def _install(args: argparse.Namespace) -> int:
    refused = _check_root(args.root)
    if refused is not None:
        return refused
    try:
        steps = Installer(args.root).install(args.profile, args.exec_cmd or default_exec())
    except (InstallError, OSError) as exc:
        print(f"edgeguard: install failed: {exc}", file=sys.stderr)
        return 2
    return _report(steps, args.json)


def _uninstall(args: argparse.Namespace) -> int:
    refused = _check_root(args.root)
    if refused is not None:
        return refused
    try:
        steps = Installer(args.root).uninstall(purge=args.purge)
    except OSError as exc:
        print(f"edgeguard: uninstall failed: {exc}", file=sys.stderr)
        return 2
    return _report(steps, args.json)
