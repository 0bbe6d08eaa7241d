"""Convert a marked YAML tree into frozen dataclasses, collecting every error at once.

The target type of each value is read from the dataclass's type hints; no section
parses YAML by hand. Unknown keys are errors; so are wrong types, bad units and values
out of the declared ``minimum``/``maximum``.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from edgeguard.findings import AREA_ACTIONS, area_of, kinds, suggest
from edgeguard.policy.yamltree import Mark, Node

__all__ = ["PolicyIssue", "check_rules", "convert_section"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One error in a policy: where, which field, what is wrong."""

    mark: Mark
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.mark}: {where}{self.message}"


class _Invalid(Exception):
    pass


_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _type_name(tp: Any) -> str:
    if tp in _NAMES:
        return _NAMES[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def _item_name(node: Node, index: int) -> str:
    """A list item's name in messages: its ``id`` when it has one (lists of rules and
    devices merge by id across layers, so an index would not match the file), else its
    index."""
    if isinstance(node.value, dict):
        ident = node.value.get("id")
        if isinstance(ident, Node) and ident.text and not isinstance(ident.value, dict | list):
            return ident.text
    return str(index)


def _plural(tp: Any) -> str:
    plurals = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    if tp in plurals:
        return plurals[tp]
    if dataclasses.is_dataclass(tp):
        return "mappings"
    return f"{getattr(tp, 'what', _type_name(tp))} values"


class _Converter:
    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    def fail(self, node: Node, path: str, message: str) -> _Invalid:
        self.issues.append(PolicyIssue(node.mark, path, message))
        return _Invalid()

    def value(self, tp: Any, node: Node, path: str, meta: typing.Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        if origin in (types.UnionType, typing.Union):
            return self.union(tp, node, path, meta)
        if origin is tuple:
            return self.sequence(tp, node, path, meta)
        if origin is typing.Literal:
            allowed = typing.get_args(tp)
            if node.value not in allowed:
                raise self.fail(node, path, f"expected one of {', '.join(map(repr, allowed))}")
            return node.value
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.section(tp, node, path)
        return self.scalar(tp, node, path, meta)

    def union(self, tp: Any, node: Node, path: str, meta: typing.Mapping[str, Any]) -> Any:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if node.value is None and len(args) < len(typing.get_args(tp)):
            return None
        if set(args) == {ipaddress.IPv4Address, ipaddress.IPv6Address}:
            return self.parsed(node, path, ipaddress.ip_address, "an IP address")
        if set(args) == {ipaddress.IPv4Network, ipaddress.IPv6Network}:
            return self.parsed(node, path, lambda t: ipaddress.ip_network(t, strict=True),
                               "a network in CIDR form like 10.0.0.0/8")
        if len(args) == 1:
            return self.value(args[0], node, path, meta)
        raise self.fail(node, path, f"unsupported union type {tp}")  # a schema bug

    def parsed(self, node: Node, path: str, parse: Any, what: str) -> Any:
        if not isinstance(node.value, (str, int)) or node.text is None:
            raise self.fail(node, path, f"expected {what}")
        try:
            return parse(node.text)
        except ValueError as exc:
            raise self.fail(node, path, f"expected {what}: {exc}") from None

    def sequence(self, tp: Any, node: Node, path: str, meta: typing.Mapping[str, Any]) -> Any:
        args = typing.get_args(tp)
        item_type = args[0]
        if not isinstance(node.value, list):
            raise self.fail(node, path, f"expected a list of {_plural(item_type)}")
        items = []
        ok = True
        for index, child in enumerate(node.value):
            try:
                items.append(self.value(item_type, child, f"{path}[{_item_name(child, index)}]",
                                        meta))
            except _Invalid:
                ok = False
        if not ok:
            raise _Invalid()
        return tuple(items)

    def scalar(self, tp: Any, node: Node, path: str, meta: typing.Mapping[str, Any]) -> Any:
        value = node.value
        if isinstance(value, (dict, list)):
            raise self.fail(node, path, f"expected {_type_name(tp)}, got a "
                            f"{'mapping' if isinstance(value, dict) else 'list'}")
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self.member(tp, node, path)
        if hasattr(tp, "parse"):
            if not isinstance(value, str) and not getattr(tp, "accepts_numbers", False):
                what = getattr(tp, "what", tp.__name__)
                raise self.fail(node, path, f"expected a {what}, got {node.text!r}")
            try:
                parsed = tp.parse(node.text)
            except ValueError as exc:
                raise self.fail(node, path, str(exc)) from None
            return self.bounded(parsed, node, path, meta)
        if tp is bool:
            if not isinstance(value, bool) or node.text not in ("true", "false"):
                hint = " (remove the quotes)" if node.quoted else ""
                raise self.fail(node, path, f"expected true or false, got {node.text!r}{hint}")
            return value
        if tp is str:
            if value is None or node.text is None or not isinstance(value, (str, int, float)):
                raise self.fail(node, path, "expected a string")
            if isinstance(value, bool):
                raise self.fail(node, path, f"expected a string, got {node.text!r} "
                                "(quote it if you mean the text)")
            return node.text
        if tp is int or tp is float:
            ok_types = (int,) if tp is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_types):
                raise self.fail(node, path, f"expected {_type_name(tp)}, got {node.text!r}")
            return self.bounded(tp(value), node, path, meta)
        raise self.fail(node, path, f"unsupported type {tp}")  # a schema bug

    def member(self, tp: type[enum.Enum], node: Node, path: str) -> enum.Enum:
        for member in tp:
            if member.value == node.text:
                return member
        raise self.fail(node, path, f"expected {_type_name(tp)}, got {node.text!r}")

    def bounded(self, number: Any, node: Node, path: str, meta: typing.Mapping[str, Any]) -> Any:
        low, high = meta.get("minimum"), meta.get("maximum")
        if low is not None and number < low:
            raise self.fail(node, path, f"must be at least {low}, got {node.text}")
        if high is not None and number > high:
            raise self.fail(node, path, f"must be at most {high}, got {node.text}")
        return number

    def section(self, cls: type[T], node: Node, path: str) -> T:
        if not isinstance(node.value, dict):
            raise self.fail(node, path, "expected a mapping")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        ok = True
        for key, child in node.value.items():
            sub = f"{path}.{key}" if path else key
            if key not in fields:
                known = ", ".join(sorted(fields))
                self.issues.append(PolicyIssue(child.mark, sub, f"unknown key (known: {known})"))
                ok = False
                continue
            try:
                kwargs[key] = self.value(hints[key], child, sub, fields[key].metadata)
            except _Invalid:
                ok = False
        for name, f in fields.items():
            if name not in kwargs and f.default is dataclasses.MISSING \
                    and f.default_factory is dataclasses.MISSING:
                self.issues.append(PolicyIssue(node.mark, f"{path}.{name}".lstrip("."),
                                               "required key is missing"))
                ok = False
        if not ok:
            raise _Invalid()
        try:
            return cls(**kwargs)
        except ValueError as exc:  # cross-field checks in __post_init__
            where, sub, message = _locate(node, path, str(exc))
            raise self.fail(where, sub, message) from None


def _locate(node: Node, path: str, message: str) -> tuple[Node, str, str]:
    """Point a ``"name[3]: ..."`` message from ``__post_init__`` at that list item."""
    match = re.match(r"^(\w+)\[(\d+)\]: (.*)$", message)
    if match and isinstance(node.value, dict):
        child = node.value.get(match.group(1))
        index = int(match.group(2))
        if child is not None and isinstance(child.value, list) and index < len(child.value):
            item = child.value[index]
            assert isinstance(item, Node)
            sub = f"{path}.{match.group(1)}[{index}]".lstrip(".")
            return item, sub, match.group(3)
    return node, path, message


def convert_section(cls: type[T], node: Node, path: str = "") -> tuple[T | None, list[PolicyIssue]]:
    """Convert ``node`` into ``cls``. Returns the object (or None) and every issue found."""
    conv = _Converter()
    try:
        result: T | None = conv.section(cls, node, path)
    except _Invalid:
        result = None
    return result, conv.issues


def check_rules(tree: Node) -> list[PolicyIssue]:
    """Check every ``rules:`` entry against the finding catalogue (:mod:`edgeguard.findings`).

    A rule whose kind or subtype is not in the catalogue would silently never match; an
    action that no component of the finding's area provides (``read-only`` for a network
    finding) would only fail when the rule fires. Each is an issue at the value's own
    file and line, with the closest known name as a suggestion. Shape errors (a rule that
    is not a mapping, a kind that is not a string) are left to :func:`convert_section`.
    """
    if not isinstance(tree.value, dict):
        return []
    rules = tree.value.get("rules")
    if rules is None or not isinstance(rules.value, list):
        return []
    known = kinds()
    issues: list[PolicyIssue] = []
    for index, rule in enumerate(rules.value):
        if not isinstance(rule.value, dict):
            continue
        path = f"rules[{_item_name(rule, index)}]"
        kind_node = rule.value.get("kind")
        if kind_node is None or not isinstance(kind_node.value, str):
            continue
        kind = kind_node.value
        if kind not in known:
            issues.append(PolicyIssue(kind_node.mark, f"{path}.kind", (
                f"unknown finding kind {kind!r}{suggest(kind, list(known))} "
                "(docs/findings.md lists every kind)")))
            continue
        sub_node = rule.value.get("subtype")
        if sub_node is not None and isinstance(sub_node.value, str) \
                and sub_node.value not in known[kind]:
            issues.append(PolicyIssue(sub_node.mark, f"{path}.subtype", (
                f"{kind!r} has no subtype {sub_node.value!r}"
                f"{suggest(sub_node.value, list(known[kind]))}")))
        area = area_of(kind)
        actions = rule.value.get("actions")
        if area is None or actions is None or not isinstance(actions.value, list):
            continue
        provided = sorted(a.value for a in AREA_ACTIONS[area])
        for item in actions.value:
            if isinstance(item.value, str) and item.value not in provided:
                issues.append(PolicyIssue(item.mark, f"{path}.actions", (
                    f"no {area.value} component provides {item.value!r} for {kind!r} "
                    f"findings (it can: {', '.join(provided)})")))
    return issues
