"""Documentation generated from the argparse tree: Markdown, a man page, bash completion.

All three come from the same parsers the program runs, so ``--help``, ``docs/cli.md``,
``edgeguard.8`` and tab completion cannot disagree (a test compares them).
"""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Iterator

from edgeguard import __version__

__all__ = ["render_bash_completion", "render_manpage", "render_markdown", "walk"]


def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser), depth first, in definition order."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*prefix, name))


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        out.extend(s for s in action.option_strings if s.startswith("--") or len(s) == 2)
        if not action.option_strings and action.choices is not None \
                and not isinstance(action, argparse._SubParsersAction):
            out.extend(str(c) for c in action.choices)
    return out


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def _help_text(parser: argparse.ArgumentParser) -> str:
    # A fixed width so the text does not depend on the terminal it is generated in.
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    formatter.add_text(parser.description)
    for group in parser._action_groups:
        formatter.start_section(group.title)
        formatter.add_text(group.description)
        formatter.add_arguments(group._group_actions)
        formatter.end_section()
    formatter.add_text(parser.epilog)
    return formatter.format_help()


def render_markdown(root: argparse.ArgumentParser) -> str:
    out = ["# Command reference", "",
           "Generated from the program's own parsers (`edgeguard manpage --markdown`);",
           "a test keeps it equal to every command's `--help`.", ""]
    for path, parser in walk(root):
        title = " ".join(("edgeguard", *path))
        out += [f"## `{title}`", "", "```", _help_text(parser).rstrip(), "```", ""]
    return "\n".join(out)


def _roff(text: str) -> str:
    lines = []
    for raw in text.splitlines():
        line = raw.replace("\\", "\\e").replace("-", "\\-")
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def render_manpage(root: argparse.ArgumentParser) -> str:
    date = _dt.date(2026, 1, 1).isoformat()  # stable output; the version says which build
    out = [
        f'.TH EDGEGUARD 8 "{date}" "edgeguard {__version__}" "System Administration"',
        ".SH NAME",
        "edgeguard \\- enforce a school trust's information-security policy",
        ".SH DESCRIPTION",
        _roff(root.description or ""),
    ]
    for path, parser in walk(root):
        out += [".SH " + " ".join(("edgeguard", *path)).upper(), ".nf", _roff(_help_text(parser)),
                ".fi"]
    out += [".SH FILES", "/etc/edgeguard/policy.yaml, /etc/edgeguard/policy.d/*.yaml,",
            "/var/log/edgeguard/audit.jsonl, /run/edgeguard/control.sock",
            ".SH SEE ALSO", "systemd.service(5), nft(8), udev(7)", ""]
    return "\n".join(out)


def render_bash_completion(root: argparse.ArgumentParser) -> str:
    cases = []
    for path, parser in walk(root):
        words = _subcommands(parser) + _options(parser)
        key = " ".join(path)
        cases.append(f'        "{key}") words="{" ".join(words)}" ;;')
    body = "\n".join(cases)
    return f"""# bash completion for edgeguard (generated: edgeguard completion bash)
_edgeguard() {{
    local cur path="" w i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ $w == -* ]] && continue
        case "${{path:+$path }}$w" in
{_known_paths(root)}
        esac
    done
    local words
    case "$path" in
{body}
        *) words="" ;;
    esac
    if [[ -z $words ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -F _edgeguard edgeguard
"""


def _known_paths(root: argparse.ArgumentParser) -> str:
    paths = [" ".join(p) for p, _ in walk(root) if p]
    pattern = "|".join(f'"{p}"' for p in paths) or '""'
    return f'            {pattern}) path="${{path:+$path }}$w" ;;'
