"""A small evaluator of the udev rule syntax the shipped media rules use, for unit tests
that run a rule file against a described device (no udevd, no root, no hardware).

Covers what rules/61 and rules/72 use: ``==``/``!=`` matches with ``|`` alternatives and
shell globs on ACTION, SUBSYSTEM, KERNEL, ENV, ATTR and the parent-chain keys ATTRS and
SUBSYSTEMS (all of one line on the same device of the chain, as udev does), PROGRAM
(only ``/usr/bin/test``), and the assignments ENV, ATTR, OWNER/GROUP/MODE (``:=`` final),
TAG+=/TAG-=, RUN+=, GOTO/LABEL. Anything else raises, so a rule this cannot evaluate
fails the test instead of passing it by accident.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TOKEN = re.compile(r'\s*([A-Z]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')
_SUBST = re.compile(r"\$env\{([^}]*)\}")


@dataclass
class Parent:
    subsystem: str
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Device:
    """The device the event is about (``chain[0]`` is itself) and its parents."""

    subsystem: str
    kernel: str
    env: dict[str, str]
    chain: Sequence[Parent]
    action: str = "add"
    tags: set[str] = field(default_factory=set)


@dataclass
class Outcome:
    env: dict[str, str]
    tags: set[str]
    owner: str | None = None
    group: str | None = None
    mode: str | None = None
    attr_writes: dict[str, str] = field(default_factory=dict)
    run: list[str] = field(default_factory=list)


def _matches(value: str | None, pattern: str) -> bool:
    value = value or ""
    return any(fnmatch.fnmatchcase(value, p) if p else value == ""
               for p in pattern.split("|"))


def _subst(text: str, env: Mapping[str, str]) -> str:
    return _SUBST.sub(lambda m: env.get(m.group(1), ""), text)


def _program(cmd: str, env: Mapping[str, str]) -> bool:
    argv = _subst(cmd, env).split()
    if argv[0] != "/usr/bin/test":
        raise ValueError(f"PROGRAM {cmd!r} not evaluated")
    args = argv[1:]
    if len(args) == 3 and args[1] == "=":  # test A = B
        return args[0] == args[2]
    if len(args) == 1:
        return args[0] != ""
    raise ValueError(f"test {args!r} not evaluated")


def _parse(path: Path) -> list[list[tuple[str, str | None, str, str]] | str]:
    out: list[list[tuple[str, str | None, str, str]] | str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pos, tokens = 0, []
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if m is None:
                raise ValueError(f"cannot parse {line!r} at {pos}")
            tokens.append((m.group(1), m.group(2), m.group(3), m.group(4)))
            pos = m.end()
        out.append(tokens)
    return out


def evaluate(paths: Sequence[Path], dev: Device) -> Outcome:
    """Run the files in order on ``dev``; what udev would leave."""
    res = Outcome(env=dict(dev.env), tags=set(dev.tags))
    final: set[str] = set()
    for path in paths:
        lines = _parse(path)
        goto: str | None = None
        for tokens in lines:
            assert not isinstance(tokens, str)
            if goto is not None:
                if tokens[0][0] == "LABEL" and tokens[0][3] == goto:
                    goto = None
                continue
            if tokens[0][0] == "LABEL":
                continue
            goto = _apply(tokens, dev, res, final)
        assert goto is None, f"GOTO {goto} without its LABEL in {path.name}"
    return res


def _line_matches(tokens: Sequence[tuple[str, str | None, str, str]], dev: Device,
                  env: Mapping[str, str]) -> bool:
    parent_keys = [(k, a, op, v) for k, a, op, v in tokens
                   if k in ("ATTRS", "SUBSYSTEMS") and op in ("==", "!=")]
    for key, attr, op, value in tokens:
        if op not in ("==", "!="):
            continue
        if key in ("ATTRS", "SUBSYSTEMS"):
            continue
        if key == "PROGRAM":
            ok = _program(value, env)
        else:
            actual = {"ACTION": dev.action, "SUBSYSTEM": dev.subsystem, "KERNEL": dev.kernel,
                      "ENV": env.get(attr or ""),
                      "ATTR": dev.chain[0].attrs.get(attr or "")}.get(key, "\0unknown")
            if actual == "\0unknown":
                raise ValueError(f"match key {key} not evaluated")
            ok = _matches(actual, value)
        if ok != (op == "=="):
            return False
    if parent_keys:
        return any(all(_matches(p.subsystem if k == "SUBSYSTEMS" else p.attrs.get(a or ""), v)
                       == (op == "==") for k, a, op, v in parent_keys) for p in dev.chain)
    return True


def _apply(tokens: Sequence[tuple[str, str | None, str, str]], dev: Device, res: Outcome,
           final: set[str]) -> str | None:
    if not _line_matches(tokens, dev, res.env):
        return None
    goto = None
    for key, attr, op, value in tokens:
        if op in ("==", "!="):
            continue
        if key == "ENV":
            res.env[attr or ""] = _subst(value, res.env)
        elif key == "ATTR":
            res.attr_writes[attr or ""] = value
        elif key in ("OWNER", "GROUP", "MODE"):
            if key in final:
                continue
            setattr(res, key.lower(), value)
            if op == ":=":
                final.add(key)
        elif key == "TAG":
            (res.tags.add if op == "+=" else res.tags.discard)(value)
        elif key == "RUN":
            res.run.append(_subst(value, res.env))
        elif key == "GOTO":
            goto = value
        else:
            raise ValueError(f"assignment {key} not evaluated")
    return goto
