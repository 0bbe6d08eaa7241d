"""Render the policy reference (every key, type, unit, default, meaning) from the schema.

The documentation cannot drift from the code: ``docs/policy.md`` is this output, and a
test compares the two.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from typing import Any

from edgeguard.findings import catalogue_markdown
from edgeguard.policy.model import Policy

__all__ = ["render_reference"]

_SCALARS = {bool: "bool", int: "integer", float: "number", str: "string"}


def _union_text(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if set(args) == {ipaddress.IPv4Address, ipaddress.IPv6Address}:
        return "IP address"
    if set(args) == {ipaddress.IPv4Network, ipaddress.IPv6Network}:
        return "CIDR network"
    return " or ".join(_type_text(a) for a in args) + " (optional)"


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        text = _union_text(tp)
    elif origin is tuple:
        text = f"list of {_type_text(typing.get_args(tp)[0])}"
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        text = " \\| ".join(f"`{m.value}`" for m in tp)
    elif dataclasses.is_dataclass(tp):
        text = "mapping"
    else:
        text = _SCALARS.get(tp) or str(getattr(tp, "what", tp.__name__)).split(" such as")[0]
    return text


_UNIT_FORMATS: dict[str, Any] = {
    "Duration": lambda v: _seconds(float(v)),
    "ByteSize": lambda v: _bytes(int(v)),
    "FileMode": lambda v: f"{int(v):04o}",
}


def _list_text(value: tuple[Any, ...]) -> str:
    if not value:
        return "`[]`"
    if dataclasses.is_dataclass(value[0]):
        return f"{len(value)} entries"
    return "`[" + ", ".join(_default_text(v).strip("`") for v in value) + "]`"


def _default_text(value: Any) -> str:
    if value is dataclasses.MISSING or value is None:
        text = ""
    elif isinstance(value, tuple):
        text = _list_text(value)
    elif dataclasses.is_dataclass(value):
        text = "see below"
    elif isinstance(value, enum.Enum):
        text = f"`{value.value}`"
    elif isinstance(value, bool):
        text = f"`{str(value).lower()}`"
    else:
        fmt = _UNIT_FORMATS.get(type(value).__name__, str)
        text = f"`{fmt(value)}`"
    return text


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{round(value * 1000)}ms"


def _bytes(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}B"


def _section(cls: type, path: str, out: list[str], nested: list[tuple[type, str]]) -> None:
    hints = typing.get_type_hints(cls)
    out.append(f"### `{path}`\n" if path else "### top level\n")
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        out.append(" ".join(cls.__doc__.split()) + "\n")
    out.append("| key | type | unit | default | meaning |")
    out.append("|---|---|---|---|---|")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        doc = str(f.metadata.get("doc", "")).replace("|", "\\|")
        unit = f.metadata.get("unit") or ""
        key = f"{path}.{f.name}" if path else f.name
        out.append(f"| `{f.name}` | {_type_text(tp)} | {unit} | {_default_text(default)} | "
                   f"{doc} |")
        inner = tp
        if typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            key += "[]"
        if dataclasses.is_dataclass(inner) and isinstance(inner, type):
            nested.append((inner, key))
    out.append("")


def render_reference() -> str:
    out = [
        "# Policy reference",
        "",
        "Generated from the schema by `edgeguard check --reference`; a test keeps this file",
        "in step with the code. Durations take a unit (`250ms`, `30s`, `10m`, `2h`, `90d`),",
        "sizes too (`512B`, `64KiB`, `64MiB`, `1GB`), rates are `N/s` or `N/m`.",
        "",
    ]
    queue: list[tuple[type, str]] = [(Policy, "")]
    while queue:
        cls, path = queue.pop(0)
        nested: list[tuple[type, str]] = []
        _section(cls, path, out, nested)
        queue = nested + queue
    out += ["## Finding kinds a rule may match", "",
            "`rules[].kind`/`subtype` must name a finding in this table (docs/findings.md",
            "says what each means), and `rules[].actions` only actions its area provides.",
            "", catalogue_markdown()]
    return "\n".join(out).rstrip() + "\n"
