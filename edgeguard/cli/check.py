"""``edgeguard check [FILE…]``: validate policy files without running anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeguard.cli._common import add_policy_options, policy_files
from edgeguard.policy.load import PolicyError, load_policy
from edgeguard.policy.reference import render_reference

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check", help="validate policy files",
        description="Validate policy files layered on the embedded default; print every "
                    "error with file, line and field. Exit 0 valid, 2 invalid.")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE")
    parser.add_argument("--reference", action="store_true",
                        help="print the policy reference (every key, unit, default) as Markdown")
    add_policy_options(parser)
    parser.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    files = list(args.files) + list(args.policy) if (args.files or args.policy) \
        else policy_files(args)
    try:
        loaded = load_policy(files, args.profile)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} error(s)", file=sys.stderr)
        return 2
    print(f"policy OK ({', '.join(loaded.sources)}); digest {loaded.digest}")
    return 0
