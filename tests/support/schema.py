"""Validate objects against docs/schema/edgeguard-ecs.schema.json (the --json contract)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import orjson

__all__ = ["SCHEMA_PATH", "validate_lines", "validate_record", "validate_row"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schema" / "edgeguard-ecs.schema.json"
_SCHEMA = orjson.loads(SCHEMA_PATH.read_bytes())
_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/$defs/{ref}", "$defs": _SCHEMA["$defs"]}
    return jsonschema.Draft202012Validator(schema, format_checker=_CHECKER)


_RECORD = _validator("record")
_ROW = _validator("row")


def validate_record(obj: dict[str, Any]) -> None:
    """An audit record: raises jsonschema.ValidationError naming the bad field."""
    _RECORD.validate(obj)


def validate_row(obj: dict[str, Any]) -> None:
    """One line of a command's --json output."""
    _ROW.validate(obj)


def validate_lines(text: str | bytes, *, records: bool = False) -> list[dict[str, Any]]:
    """Every non-empty line is one JSON object valid against the schema."""
    raw = text.encode() if isinstance(text, str) else text
    out: list[dict[str, Any]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        obj = orjson.loads(line)
        assert isinstance(obj, dict), f"not an object: {line[:80]!r}"
        (validate_record if records else validate_row)(obj)
        out.append(obj)
    return out


def validate_many(objs: Iterable[dict[str, Any]]) -> None:
    for obj in objs:
        validate_row(obj)
