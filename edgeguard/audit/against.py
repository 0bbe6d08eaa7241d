"""Compare the local log with a copy shipped off-host (rsyslog's file, a Vector sink).

The one attack a hash chain cannot see on its own is cutting whole records from the end
of the newest segment (and, holding the current key, even re-sealing the cut end). The
shipped copy, already out of the intruder's reach, still has them: any sequence of this
chain in the copy beyond the local end, or with another hash, is reported.

A shipped file may hold syslog prefixes before the JSON (anything up to the first
``{``), foreign lines (ignored) and duplicates after a reconnect (the same chain id,
sequence and hash: harmless; the same sequence with another hash: reported).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.chain import get_path

__all__ = ["ShippedCopy", "compare_shipped", "json_records", "read_shipped"]


@dataclass(slots=True)
class ShippedCopy:
    hashes: dict[int, str]
    conflicts: list[tuple[int, str]]  # a sequence shipped twice with different hashes
    source: str


def _shipped_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return out


def json_records(path: Path) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each JSON object line of a received file, after any syslog prefix (up to the first
    ``{``), with its JSON bytes (no newline); other lines are skipped. Streams."""
    with path.open("rb") as fh:
        for raw in fh:
            start = raw.find(b"{")
            if start < 0:
                continue
            body = raw[start:].rstrip(b"\r\n")
            try:
                rec = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield rec, body


def read_shipped(paths: Iterable[Path], chain_id: str | None) -> ShippedCopy:
    copy = ShippedCopy({}, [], ", ".join(str(p) for p in paths))
    for path in _shipped_files(paths):
        for rec, _ in json_records(path):
            if get_path(rec, "edgeguard.chain_id") != chain_id:
                continue
            seq, digest = get_path(rec, "event.sequence"), get_path(rec, "event.hash")
            if not isinstance(seq, int) or not isinstance(digest, str):
                continue
            known = copy.hashes.setdefault(seq, digest)
            if known != digest:
                copy.conflicts.append((seq, str(path)))
    return copy


def compare_shipped(copy: ShippedCopy, local: dict[int, str], local_last: int | None,
                    local_first: int | None) -> tuple[int, str, str, str] | None:
    """The first sequence where the local log and the shipped copy disagree:
    (sequence, reason, detail, where)."""
    if copy.conflicts:
        seq, where = min(copy.conflicts)
        return (seq, "shipped-conflict", "the shipped copy holds two different records "
                       f"with sequence {seq}", where)
    last = local_last or 0
    first = local_first or 1
    for seq in sorted(s for s in copy.hashes if first <= s <= last):
        if local.get(seq) != copy.hashes[seq]:
            return (seq, "edited", "differs from the shipped copy", copy.source)
    beyond = [s for s in copy.hashes if s > last]
    if beyond:
        return (last + 1, "truncated", f"the local log ends at {last} but the shipped "
                       f"copy holds records up to {max(beyond)}", copy.source)
    return None
