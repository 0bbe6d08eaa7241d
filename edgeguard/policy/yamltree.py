"""YAML read into a tree that remembers where each value came from.

Every value keeps its file, line and column so that errors name them, and so that
layered policies (shipped default, profile, ``/etc`` overrides) can be merged while each
value still points at the file that set it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Mark", "Node", "PolicySyntaxError", "merge", "parse_yaml"]


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


def _mark(file: str, m: yaml.Mark | None) -> Mark:
    if m is None:
        return Mark(file, 0, 0)
    return Mark(file, m.line + 1, m.column + 1)


_constructor = yaml.constructor.SafeConstructor()


def _convert(file: str, node: yaml.Node) -> Node:
    mark = _mark(file, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicySyntaxError(mark, "YAML merge keys ('<<') are not supported")
            key = _convert(file, key_node)
            if not isinstance(key.value, str) or key.text is None:
                raise PolicySyntaxError(key.mark, "mapping keys must be plain strings")
            name = key.text
            if name in keys:
                raise PolicySyntaxError(
                    key.mark, f"duplicate key {name!r} (first at line {keys[name].mark.line})"
                )
            keys[name] = key
            out[name] = _convert(file, value_node)
        return Node(out, mark, tag=node.tag)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(file, n) for n in node.value], mark, tag=node.tag)
    assert isinstance(node, yaml.ScalarNode)
    try:
        value = _constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(mark, f"bad value: {exc}") from None
    if node.tag == "tag:yaml.org,2002:str" or isinstance(value, str):
        value = node.value
    return Node(value, mark, text=str(node.value), tag=node.tag, quoted=node.style in ("'", '"'))


def parse_yaml(text: str | bytes, file: str) -> Node:
    """Parse one YAML document. Raises :class:`PolicySyntaxError` naming file and line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicySyntaxError(
                Mark(file, 1, 1), f"not UTF-8 text (byte {exc.start}): is this a policy file?"
            ) from None
    if "\x00" in text:
        raise PolicySyntaxError(Mark(file, 1, 1), "contains NUL bytes: is this a policy file?")
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = _mark(file, exc.problem_mark or exc.context_mark)
        raise PolicySyntaxError(mark, f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(Mark(file, 1, 1), f"YAML error: {exc}") from None
    if not documents or documents[0] is None:
        raise PolicySyntaxError(Mark(file, 1, 1), "empty policy file")
    if len(documents) > 1:
        raise PolicySyntaxError(
            _mark(file, documents[1].start_mark), "more than one YAML document in a policy file"
        )
    root = _convert(file, documents[0])
    if not isinstance(root.value, dict):
        raise PolicySyntaxError(root.mark, "a policy file must be a mapping of sections")
    return root


def parse_file(path: Path) -> Node:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicySyntaxError(Mark(str(path), 0, 0), f"cannot read: {exc.strerror}") from None
    return parse_yaml(data, str(path))


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
