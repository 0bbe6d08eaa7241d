"""YAML read into a tree that remembers where each value came from.

Every value keeps its file, line and column so that errors name them, and so that
layered policies (shipped default, profile, ``/etc`` overrides) can be merged while each
value still points at the file that set it.

A policy file is hostile input until it has loaded: the tree is built from the parser's
event stream with an explicit stack (no recursion), and the work is linear in the
file's size because of the :class:`YamlLimits`:

* no aliases (``*name``): YAML aliases share a value, and nine lines of aliases to
  aliases expand to 9**9 values (the "billion laughs"). Merge keys (``<<``), their only
  common use, were never supported, and layers already merge rules and devices by id,
  so a policy loses nothing by writing a value out. Refusing them outright leaves no
  expansion bound to tune and no value whose line number points somewhere else.
* nesting at most ``max_depth`` levels (the schema needs 4);
* at most ``max_bytes`` per file (the loader reads no more than that), and at most
  ``max_nodes`` values in it;
* only the core tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!map``, ``!!seq``): ``!!python/object`` and friends are refused by name.

Each refusal is a :class:`PolicySyntaxError` naming file, line and column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import yaml

__all__ = [
    "DEFAULT_LIMITS",
    "Mark",
    "Node",
    "PolicySyntaxError",
    "YamlLimits",
    "merge",
    "parse_yaml",
]


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Bounds on one policy file. The shipped default is 4.5 kB, 4 levels deep."""

    #: Largest file read, in bytes (1 MiB: about 6,000 trusted-device entries).
    max_bytes: int = 1 << 20
    #: Deepest nesting of mappings and lists.
    max_depth: int = 32
    #: Most values (keys, scalars, mappings, lists) in one file: 1 MiB of trusted
    #: devices is 71,000; 1 MiB of ``[0,0,…]`` would be 500,000 and take 20 s.
    max_nodes: int = 100_000


DEFAULT_LIMITS = YamlLimits()


@dataclass(frozen=True, slots=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(slots=True)
class Node:
    """A YAML value: ``value`` is a dict[str, Node], a list[Node], or a scalar.

    ``text`` is the scalar's source text (so ``0951`` or ``on`` stay what was written
    when a string is wanted); ``tag`` its resolved YAML tag.
    """

    value: object
    mark: Mark
    text: str | None = None
    tag: str = ""
    quoted: bool = False


class PolicySyntaxError(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(f"{mark}: {message}")
        self.mark = mark
        self.message = message


class _Where(Protocol):
    """A parser's mark: PyYAML's own or libyaml's (0-based line and column)."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def _mark(file: str, m: _Where | None) -> Mark:
    if m is None:
        return Mark(file, 0, 0)
    return Mark(file, m.line + 1, m.column + 1)


_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null",
                                              "timestamp"))
_MAP, _SEQ, _MERGE, _STR = _CORE + "map", _CORE + "seq", _CORE + "merge", _CORE + "str"


#: libyaml's parser (20 times faster: 0.4 s for a 1 MiB policy where the pure-Python one
#: takes 8 s); only the event stream is used, so both give the same tree.
_PARSER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


@dataclass(slots=True)
class _Open:
    """A mapping or list being built; ``key`` is a mapping's key awaiting its value."""

    node: Node
    key: Node | None = None
    keys: dict[str, Node] = field(default_factory=dict)


class _Builder:
    """Events in, a :class:`Node` tree out; every limit checked as the events arrive."""

    def __init__(self, file: str, limits: YamlLimits) -> None:
        self.file = file
        self.limits = limits
        self.loader = yaml.SafeLoader("")
        self.resolve = cast(Callable[[type[yaml.Node], str, tuple[bool, bool]], str],
                            self.loader.resolve)
        self.stack: list[_Open] = []
        self.root: Node | None = None
        self.documents = 0
        self.nodes = 0

    def fail(self, event: yaml.Event, message: str) -> PolicySyntaxError:
        return PolicySyntaxError(_mark(self.file, event.start_mark), message)

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
        elif self.documents > 1 and isinstance(event, yaml.NodeEvent):
            raise self.fail(event, "more than one YAML document in a policy file")
        elif isinstance(event, yaml.AliasEvent):
            raise self.fail(event, f"YAML aliases ('*{event.anchor}') are not supported in "
                                   "a policy file: write the value out")
        elif isinstance(event, yaml.ScalarEvent):
            self.add(event, self.scalar(event))
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self.open(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self.stack.pop()
            if not self.stack:
                self.root = done.node

    def open(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        is_map = isinstance(event, yaml.MappingStartEvent)
        tag = event.tag if event.tag not in (None, "!") else (_MAP if is_map else _SEQ)
        if tag != (_MAP if is_map else _SEQ):
            raise self.fail(event, f"YAML tag {_tag_name(tag)} is not supported here")
        if len(self.stack) >= self.limits.max_depth:
            raise self.fail(event, f"nested deeper than {self.limits.max_depth} levels "
                                   "(the policy limit)")
        node = Node({} if is_map else [], _mark(self.file, event.start_mark), tag=tag)
        self.add(event, node)
        self.stack.append(_Open(node))

    def scalar(self, event: yaml.ScalarEvent) -> Node:
        mark = _mark(self.file, event.start_mark)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            raise PolicySyntaxError(mark, "YAML merge keys ('<<') are not supported")
        if tag not in _SCALAR_TAGS:
            raise PolicySyntaxError(mark, f"YAML tag {_tag_name(tag)} is not supported "
                                          "(only !!str, !!int, !!float, !!bool, !!null)")
        value: object = event.value
        if tag != _STR:
            node = yaml.ScalarNode(tag, event.value)
            try:
                value = self.loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise PolicySyntaxError(mark, f"bad value: {exc}") from None
            except (ValueError, OverflowError, KeyError, IndexError, TypeError):
                # PyYAML's constructors on an explicit tag: ``!!bool ''`` (KeyError),
                # ``!!int ''`` (IndexError), an int of 5,000 digits (ValueError)
                raise PolicySyntaxError(mark, f"bad value for {_tag_name(tag)}: "
                                              f"{event.value[:40]!r}") from None
            finally:
                self.loader.constructed_objects.clear()
            if isinstance(value, str):
                value = event.value
        return Node(value, mark, text=event.value, tag=tag, quoted=event.style in ("'", '"'))

    def add(self, event: yaml.NodeEvent, node: Node) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(event, f"more than {self.limits.max_nodes} values in one file "
                                   "(the policy limit)")
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        if isinstance(top.node.value, list):
            top.node.value.append(node)
            return
        assert isinstance(top.node.value, dict)
        if top.key is None:
            if not isinstance(node.value, str) or node.text is None:
                raise PolicySyntaxError(node.mark, "mapping keys must be plain strings")
            first = top.keys.get(node.text)
            if first is not None:
                raise PolicySyntaxError(node.mark, f"duplicate key {node.text!r} "
                                                   f"(first at line {first.mark.line})")
            top.keys[node.text] = top.key = node
            return
        assert top.key.text is not None
        top.node.value[top.key.text] = node
        top.key = None


def _problem(exc: yaml.MarkedYAMLError, text: str, where: _Where | None) -> str:
    """libyaml's message, with the character it could not read named (a tab, mostly)."""
    problem = str(exc.problem or exc)
    if where is not None and problem == "found character that cannot start any token":
        lines = text.split("\n", where.line + 1)
        if where.line < len(lines) and where.column < len(lines[where.line]):
            return f"found character {lines[where.line][where.column]!r} that cannot start " \
                   "any token"
    return problem


def parse_yaml(text: str | bytes, file: str, limits: YamlLimits = DEFAULT_LIMITS) -> Node:
    """Parse one YAML document. Raises :class:`PolicySyntaxError` naming file and line."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > limits.max_bytes:
        raise PolicySyntaxError(
            Mark(file, raw.count(b"\n", 0, limits.max_bytes) + 1, 1),
            f"file is larger than the policy limit of {limits.max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicySyntaxError(
            Mark(file, 1, 1), f"not UTF-8 text (byte {exc.start}): is this a policy file?"
        ) from None
    if "\x00" in text:
        raise PolicySyntaxError(Mark(file, 1, 1), "contains NUL bytes: is this a policy file?")
    builder = _Builder(file, limits)
    try:
        for event in yaml.parse(text, Loader=_PARSER):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark or exc.context_mark
        raise PolicySyntaxError(_mark(file, where),
                                f"YAML syntax error: {_problem(exc, text, where)}") from None
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(Mark(file, 1, 1), f"YAML error: {exc}") from None
    root = builder.root
    if root is None:
        raise PolicySyntaxError(Mark(file, 1, 1), "empty policy file")
    if not isinstance(root.value, dict):
        raise PolicySyntaxError(root.mark, "a policy file must be a mapping of sections")
    return root


def _entry_id(node: Node) -> str | None:
    if isinstance(node.value, dict):
        ident: Node | None = node.value.get("id")
        if ident is not None and ident.text is not None and not isinstance(ident.value, dict):
            return ident.text
    return None


def _merge_by_id(base: list[Node], override: list[Node]) -> list[Node] | None:
    """Lists whose entries all have an ``id`` (rules, trusted devices) merge by id."""
    if not base or not override:
        return None
    base_ids = [_entry_id(n) for n in base]
    over_ids = [_entry_id(n) for n in override]
    if None in base_ids or None in over_ids or len(set(over_ids)) != len(over_ids):
        return None  # not id lists, or duplicates the validator must report
    merged = list(base)
    position = {ident: index for index, ident in enumerate(base_ids)}
    for ident, node in zip(over_ids, override, strict=True):
        assert ident is not None
        if ident in position:
            merged[position[ident]] = merge(merged[position[ident]], node)
        else:
            position[ident] = len(merged)
            merged.append(node)
    return merged


def merge(base: Node, override: Node) -> Node:
    """Overlay ``override`` on ``base``.

    Mappings merge key by key. Lists of entries that all carry an ``id`` (``rules``,
    ``media.trusted_devices``) merge by id: an entry with a known id is overlaid on it,
    a new id is appended, so a profile or a ``policy.d`` drop-in adds rules and devices
    without repeating the rest. Any other value, and any other list, replaces.
    """
    if isinstance(base.value, dict) and isinstance(override.value, dict):
        merged: dict[str, Node] = dict(base.value)
        for key, node in override.value.items():
            merged[key] = merge(merged[key], node) if key in merged else node
        return Node(merged, override.mark, tag=override.tag)
    if isinstance(base.value, list) and isinstance(override.value, list):
        by_id = _merge_by_id(base.value, override.value)
        if by_id is not None:
            return Node(by_id, override.mark, tag=override.tag)
    return override
