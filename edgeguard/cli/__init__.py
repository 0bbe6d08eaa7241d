"""The ``edgeguard`` command. Each module in this package registers its subcommands.

A module here defines ``register(subparsers)`` and sets ``func`` on its parsers; the
function takes the parsed arguments and returns the exit code (0 ok, 1 findings or
failure where that makes sense, 2 usage or input error).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from edgeguard import __version__
from edgeguard.textsafe import escaped_output

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeguard",
        description="Enforce a school trust's information-security policy on this machine.",
        epilog="Exit status: 0 ok; 1 findings present, a broken chain or a refused request "
               "where the command says so; 2 usage or input error (bad arguments, an "
               "unreadable file or policy, no daemon to ask). Reporting commands take --json "
               "and then print one ECS JSON object per line "
               "(docs/schema/edgeguard-ecs.schema.json), exactly; human-readable output "
               "shows control characters (an SSID's escape sequences) as \\uXXXX.",
    )
    parser.add_argument("--version", action="version", version=f"edgeguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        # Human-readable output shows control characters (an SSID's ESC sequences)
        # escaped; --json goes to sys.stdout.buffer and stays exact.
        with escaped_output():
            code: int = args.func(args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return code
