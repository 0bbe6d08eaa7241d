"""``edgeguard manpage`` and ``edgeguard completion bash``: docs from the parsers."""

from __future__ import annotations

import argparse
import sys

from edgeguard.cli._docs import render_bash_completion, render_manpage, render_markdown

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    man = sub.add_parser("manpage", help="print the edgeguard(8) man page (roff)",
                         description="Print the man page generated from the command parsers.")
    man.add_argument("--markdown", action="store_true",
                     help="print the command reference as Markdown instead (docs/cli.md)")
    man.set_defaults(func=_manpage)
    comp = sub.add_parser(
        "completion", help="print a shell completion script",
        description="Print a completion script, e.g. "
                    "`edgeguard completion bash > /etc/bash_completion.d/edgeguard`.")
    comp.add_argument("shell", choices=["bash"])
    comp.set_defaults(func=_completion)


def _root() -> argparse.ArgumentParser:
    from edgeguard.cli import build_parser  # noqa: PLC0415 - the root parser imports this module

    return build_parser()


def _manpage(args: argparse.Namespace) -> int:
    root = _root()
    sys.stdout.write(render_markdown(root) if args.markdown else render_manpage(root))
    return 0


def _completion(args: argparse.Namespace) -> int:
    sys.stdout.write(render_bash_completion(_root()))
    return 0
