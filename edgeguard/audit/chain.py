"""Canonical JSON and the SHA-256 hash chain, shared by the writer and the verifier.

A record line is the canonical JSON (orjson, sorted keys, compact, UTF-8) of the nested
ECS record, including ``event.sequence`` and ``event.hash``. The hash covers the previous
record's hash and the canonical JSON of this record *without* ``event.hash``::

    hash_n = sha256(hash_{n-1} (hex, ASCII) || "\\n" || canonical(record_n minus event.hash))

so editing, deleting, inserting or reordering any record breaks the chain at that point.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = [
    "GENESIS_HASH",
    "CanonicalError",
    "canonical",
    "chain_hash",
    "get_path",
    "strip_hash",
]

GENESIS_HASH = "0" * 64

_OPTS = orjson.OPT_SORT_KEYS


class CanonicalError(ValueError):
    """The record holds something canonical JSON cannot represent."""


def canonical(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record, option=_OPTS)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise CanonicalError(str(exc)) from None


def strip_hash(record: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``record`` without ``event.hash``."""
    event = dict(record.get("event", {}))
    event.pop("hash", None)
    out = dict(record)
    out["event"] = event
    return out


def chain_hash(previous: str, record_without_hash: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(previous.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical(record_without_hash))
    return digest.hexdigest()


def get_path(record: dict[str, Any], dotted: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
