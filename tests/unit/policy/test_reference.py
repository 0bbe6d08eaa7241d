"""docs/policy.md is the schema's own reference; it must not drift from the code."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from edgeguard.policy.model import Policy
from edgeguard.policy.reference import render_reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "policy.md"


def test_docs_policy_md_is_current() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/policy.md is stale: run `edgeguard check --reference > docs/policy.md`")


def _all_fields(cls: type, seen: set[type]) -> list[dataclasses.Field[object]]:
    """Every field of ``cls`` and of the sections and list items nested in it."""
    out: list[dataclasses.Field[object]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        out.append(f)
        for inner in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(inner) and isinstance(inner, type) and inner not in seen:
                seen.add(inner)
                out.extend(_all_fields(inner, seen))
    return out


def test_every_key_is_documented() -> None:
    undocumented = [f.name for f in _all_fields(Policy, set()) if not f.metadata.get("doc")]
    assert undocumented == []


def test_reference_via_cli(eg) -> None:  # type: ignore[no-untyped-def]
    result = eg(["check", "--reference"])
    assert result.returncode == 0
    assert result.stdout == render_reference()
