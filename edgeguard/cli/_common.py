"""Helpers shared by the command modules: policy options, output, the control socket."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeguard.policy.shipped import PROFILES
from edgeguard.textsafe import escape

__all__ = [
    "DEFAULT_SOCKET",
    "EXIT_NO_DAEMON",
    "EXIT_REFUSED",
    "add_audit_dir_option",
    "add_policy_options",
    "add_socket_option",
    "call_daemon",
    "command_group",
    "ecs_row",
    "existing_directory",
    "policy_files",
    "print_json_lines",
    "print_table",
    "report_control_error",
]

DEFAULT_SOCKET = Path("/run/edgeguard/control.sock")

#: Exit status of every command that needs the daemon when none answers on the socket
#: (like an LSB init script's "program is not running").
EXIT_NO_DAEMON = 3
#: Exit status when the daemon answered but refused or could not do what was asked.
EXIT_REFUSED = 1


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def command_group(sub: Subparsers, name: str, help_text: str, description: str | None = None,
                  ) -> tuple[argparse.ArgumentParser, Subparsers]:
    """A command with subcommands (``edgeguard media ...``); given none, it prints its help
    to stderr and exits 2 (a usage error)."""
    parser = sub.add_parser(name, help=help_text, description=description)
    actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)
    return parser, actions


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    """``--policy FILE`` (repeatable) and ``--profile NAME``: every command that reads a
    policy takes both, with the same meaning."""
    parser.add_argument("--policy", metavar="FILE", type=Path, action="append", default=[],
                        help="policy file layered on the embedded default (repeatable); "
                             "without it, /etc/edgeguard/policy.yaml and policy.d/*.yaml")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="shipped profile layered between the default and the files")


def _hidden_alias(parser: argparse.ArgumentParser, old: str, dest: str, **kw: Any) -> None:
    """An old spelling of an option, still accepted (scripts keep working) but not shown
    in ``--help``, the man page or the completion."""
    parser.add_argument(old, dest=dest, help=argparse.SUPPRESS, **kw)


def add_audit_dir_option(parser: argparse.ArgumentParser, *old: str,
                         help_text: str = "the audit directory (default: the policy's "
                                          "audit.directory)") -> None:
    """``--audit-dir DIR``, the one name of the audit directory; ``old``: former
    spellings kept as hidden aliases (``replay --audit``)."""
    parser.add_argument("--audit-dir", type=Path, metavar="DIR", default=None, help=help_text)
    for spelling in old:
        _hidden_alias(parser, spelling, "audit_dir", type=Path, metavar="DIR")


def policy_files(args: argparse.Namespace) -> list[Path]:
    from edgeguard.policy.load import default_layers  # noqa: PLC0415 - start-up: the loader
    # (and its dataclasses) only for a command that reads the policy

    files: list[Path] = list(args.policy)
    return files if files else default_layers()


def add_socket_option(parser: argparse.ArgumentParser, *, serve: bool = False) -> None:
    """``--socket PATH``, the one name of the control socket (``--control-socket`` is a
    hidden alias). ``serve``: the daemon's own option (it overrides the policy's
    ``daemon.control_socket``, so no default here)."""
    if serve:
        parser.add_argument("--socket", metavar="PATH", type=Path, default=None,
                            help="the control socket to serve (default: the policy's "
                                 "daemon.control_socket)")
    else:
        parser.add_argument("--socket", metavar="PATH", type=Path, default=DEFAULT_SOCKET,
                            help=f"the daemon's control socket (default {DEFAULT_SOCKET})")
    _hidden_alias(parser, "--control-socket", "socket", metavar="PATH", type=Path)


def report_control_error(exc: Exception) -> int:
    """Print why the daemon did not do it (each reason it gave on its own line); the
    exit status: :data:`EXIT_NO_DAEMON` when none answered, else :data:`EXIT_REFUSED`."""
    # imported here: the commands that never ask the daemon start without it
    from edgeguard.daemon.control import ControlError, DaemonUnreachable  # noqa: PLC0415

    print(f"edgeguard: {exc}", file=sys.stderr)
    if isinstance(exc, ControlError):
        for line in exc.details:
            print(f"  {escape(line)}", file=sys.stderr)
    return EXIT_NO_DAEMON if isinstance(exc, DaemonUnreachable) else EXIT_REFUSED


def call_daemon(args: argparse.Namespace, command: str,
                params: Mapping[str, Any] | None = None) -> Any:
    """Ask the daemon; when it cannot, print why and exit :data:`EXIT_NO_DAEMON` (no
    daemon answers) or :data:`EXIT_REFUSED` (it refused or failed)."""
    from edgeguard.daemon.control import ControlError, request  # noqa: PLC0415

    try:
        return request(args.socket, command, params)
    except ControlError as exc:
        raise SystemExit(report_control_error(exc)) from None


def print_json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    import orjson  # noqa: PLC0415 - start-up: only the commands that print JSON load it

    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(row) + b"\n")
    out.flush()


def ecs_row(action: str, fields: Mapping[str, Any], *, kind: str = "state",
            category: tuple[str, ...] = ("host",), event_type: tuple[str, ...] = ("info",),
            ) -> dict[str, Any]:
    """One ``--json`` line of a reporting command: ``fields`` (ECS-dotted) nested under
    an ECS ``event`` saying what the line is, stamped now. Every line a command prints
    thus validates against docs/schema/edgeguard-ecs.schema.json like an audit record
    does (``event.kind`` and ``event.action`` required, no unknown top-level names)."""
    from edgeguard.clock import SystemClock  # noqa: PLC0415 - start-up: --json only
    from edgeguard.ecs import iso_timestamp, nest  # noqa: PLC0415

    dotted: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    dotted.setdefault("@timestamp", iso_timestamp(SystemClock().now()))
    dotted.update({"event.kind": kind, "event.category": list(category),
                   "event.type": list(event_type), "event.action": action})
    return nest(dotted)


def print_table(rows: list[Mapping[str, Any]], columns: list[str]) -> None:
    """Columns sized to the values as printed: control characters escaped."""
    cells = [{c: escape(str(r.get(c, ""))) for c in columns} for r in rows]
    widths = {c: max([len(c)] + [len(r[c]) for r in cells]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in cells:
        print("  ".join(row[c].ljust(widths[c]) for c in columns))


def existing_directory(directory: Path | None, prog: str) -> Path | None:
    """``directory`` when it is one; else ``None`` after saying why (``None`` in: the
    caller has already said so)."""
    if directory is not None and not directory.is_dir():
        print(f"{prog}: {directory}: not a directory", file=sys.stderr)
        return None
    return directory
