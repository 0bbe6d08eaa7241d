"""The ``edgeguard`` command. Each module in this package registers its subcommands.

A module here defines ``register(subparsers)`` and sets ``func`` on its parsers; the
function takes the parsed arguments and returns the exit code (0 ok, 1 findings or
failure where that makes sense, 2 usage or input error).

Start-up is lazy: :data:`COMMANDS` names the module of every top-level command, and a
run imports only the module of the command it was given, so ``edgeguard --version`` and
``edgeguard check`` never load the daemon, pyroute2 or the detectors. ``--help``, an
unknown command and the documentation generators build the whole tree
(:func:`build_parser`); a test checks that :data:`COMMANDS` matches what the modules
register.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from edgeguard import __version__
from edgeguard.textsafe import escaped_output

__all__ = ["COMMANDS", "build_parser", "main"]

#: top-level command -> the module of this package that registers it
COMMANDS: dict[str, str] = {
    "audit": "audit",
    "check": "check",
    "completion": "manpage",
    "install": "install",
    "kiosk": "kiosk",
    "manpage": "manpage",
    "media": "media",
    "net": "net",
    "prepare": "prepare",
    "reload": "status",
    "replay": "replay",
    "report": "report",
    "run": "run",
    "status": "status",
    "uninstall": "install",
    "wifi": "wifi",
}

#: exit status after the reader of our output went away (``… | head -1``)
EXIT_PIPE_CLOSED = 0

#: The exit statuses every command shares; a command's own --help says which it uses.
EXIT_STATUS = ("Exit status: 0 ok; 1 findings present, a broken chain or a refused request "
               "where the command says so; 2 usage or input error (bad arguments, an "
               "unreadable file or policy); 3 no daemon answers on the control socket.")


def _columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` gives it (``COLUMNS``,
    else the terminal of stdout, else 80), without importing shutil (with bz2 and lzma:
    ~4 ms of every command's start-up, for argparse's help width)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter; only the default width is found without shutil."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """The root parser; subcommand parsers are of its class (argparse makes them so),
    so every parser of the tree formats with :class:`_HelpFormatter` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _root_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgeguard",
        description="Enforce a school trust's information-security policy on this machine.",
        epilog=f"{EXIT_STATUS} Reporting commands take --json "
               "and then print one ECS JSON object per line "
               "(docs/schema/edgeguard-ecs.schema.json), exactly; human-readable output "
               "shows control characters (an SSID's escape sequences) as \\uXXXX.",
    )
    parser.add_argument("--version", action="version", version=f"edgeguard {__version__}")
    return parser


def _build(modules: Iterable[str]) -> argparse.ArgumentParser:
    parser = _root_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(set(modules)):
        importlib.import_module(f"{__name__}.{name}").register(sub)
    _complete_help(parser)
    return parser


def _complete_help(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's ``--help`` has a description (its one-line help when it has
    no longer one) and says its exit statuses (the shared ones when it names none)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                text = str(helps[name])
                child.description = text[:1].upper() + text[1:] + "."
            said = f"{child.description or ''} {child.epilog or ''}"
            if "Exit" not in said:
                child.epilog = f"{child.epilog} {EXIT_STATUS}" if child.epilog else EXIT_STATUS
            _complete_help(child)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (every module imported): for help and generated docs."""
    return _build(COMMANDS.values())


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (the root parser takes no option with a value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    command = _command_of(argv)
    if command in COMMANDS:
        return _build([COMMANDS[command]])
    if command is None and any(w in ("--version",) for w in argv) \
            and not any(w in ("-h", "--help") for w in argv):
        return _root_parser()
    return build_parser()


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace
            ) -> argparse.ArgumentParser:
    """The deepest subcommand parser the arguments selected."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest or "", None)
            child = action.choices.get(name) if isinstance(name, str) else None
            if child is not None:
                return _chosen(child, args)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Like ``parse_args``, but an unknown option is reported with the usage of the
    subcommand it was given to, not the root's."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        _chosen(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _reader_gone() -> int:
    """stdout's reader closed the pipe: say nothing, and keep the interpreter's final
    flush from printing "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_PIPE_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _parser_for(words)
    args = _parse(parser, words)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        # Human-readable output shows control characters (an SSID's ESC sequences)
        # escaped; --json goes to sys.stdout.buffer and stays exact.
        with escaped_output():
            code: int = args.func(args)
            sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        return 130
    return code
