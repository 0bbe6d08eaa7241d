"""Segment files on disk: names, the chain head, the last record of a file, pruning.

The active segment is ``audit.jsonl``; rotated segments are ``audit-<first seq>.jsonl``
(zero-padded, so names sort in chain order). Files are only ever appended to, renamed
or (by retention) deleted, never rewritten.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.chain import get_path

__all__ = [
    "ACTIVE_NAME",
    "AuditWriteError",
    "ChainHead",
    "SegmentEnd",
    "first_line",
    "last_complete_line",
    "read_head",
    "rotated_segments",
    "segment_end",
    "segment_name",
    "set_aside",
    "set_aside_headless",
]

ACTIVE_NAME = "audit.jsonl"
_TAIL_CHUNK = 1 << 16


class AuditWriteError(OSError):
    """The audit directory is unusable (e.g. a segment without a header)."""


def segment_name(first_sequence: int) -> str:
    return f"audit-{first_sequence:012d}.jsonl"


def rotated_segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("audit-*.jsonl"))


@dataclass(frozen=True, slots=True)
class ChainHead:
    chain_id: str
    sequence: int  # last written sequence (0: none yet)
    hash: str
    first_sequence: int  # first sequence of the active segment
    unclean_tail: int  # bytes of an incomplete final record found at open


def last_complete_line(path: Path) -> tuple[bytes | None, int]:
    """The last complete line of ``path`` and the count of bytes after it."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        offset = max(0, size - _TAIL_CHUNK)
        while True:
            fh.seek(offset)
            data = fh.read(size - offset)
            end = data.rfind(b"\n")
            if end >= 0:
                tail = len(data) - end - 1
                start = data.rfind(b"\n", 0, end) + 1
                if start > 0 or offset == 0:
                    return data[start:end], tail
            if offset == 0:
                return None, len(data)
            offset = max(0, offset - _TAIL_CHUNK)


def first_line(path: Path) -> bytes | None:
    with path.open("rb") as fh:
        line = fh.readline()
    return line if line.endswith(b"\n") else None


def read_head(directory: Path) -> ChainHead | None:
    """Where the chain in ``directory`` stands: from the active or the newest segment."""
    active = directory / ACTIVE_NAME
    candidates = [active] if active.exists() else rotated_segments(directory)[-1:]
    if not candidates:
        return None
    path = candidates[0]
    header_line = first_line(path)
    last, tail = last_complete_line(path)
    if header_line is None or last is None:
        raise AuditWriteError(errno.EIO, f"{path}: no complete header record; move it aside")
    try:
        header, record = orjson.loads(header_line), orjson.loads(last)
        chain, seq = get_path(header, "edgeguard.chain_id"), get_path(record, "event.sequence")
        digest, first = get_path(record, "event.hash"), get_path(header, "event.sequence")
    except orjson.JSONDecodeError:
        raise AuditWriteError(errno.EIO, f"{path}: damaged (not JSON)") from None
    if not (isinstance(chain, str) and isinstance(digest, str) and type(seq) is int
            and type(first) is int):
        raise AuditWriteError(errno.EIO, f"{path}: damaged (header or last record)")
    return ChainHead(chain_id=chain, sequence=seq, hash=digest, first_sequence=first,
                     unclean_tail=tail if path == active else 0)


def set_aside(active: Path, why: str) -> str:
    """Rename a segment the writer cannot continue (kept for a human, never deleted)."""
    aside = active.with_name(f"{ACTIVE_NAME}.{why}-{active.stat().st_ino}")
    os.rename(active, aside)
    return aside.name


def set_aside_headless(active: Path) -> str | None:
    """An active segment without a complete header (killed between create and the
    header's write, or a power cut) holds no record: set it aside, start from the
    newest rotated segment. Empty files are removed; anything else is kept for a human."""
    try:
        size = active.stat().st_size
    except FileNotFoundError:
        return None
    if first_line(active) is not None:
        return None
    if size == 0:
        active.unlink()
        return None
    return set_aside(active, "headless")


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """What a prune record keeps of a deleted segment."""

    path: Path
    last_sequence: int
    last_hash: str
    last_time: float  # @timestamp of its last record (seconds since the epoch)


def _parse_time(stamp: Any) -> float:
    parsed = _dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=_dt.UTC).timestamp()


def segment_end(path: Path) -> SegmentEnd | None:
    """The last complete record of a rotated segment; None if it cannot be read."""
    try:
        line, _tail = last_complete_line(path)
        if line is None:
            return None
        rec = orjson.loads(line)
        return SegmentEnd(path, int(get_path(rec, "event.sequence")),
                          str(get_path(rec, "event.hash")),
                          _parse_time(get_path(rec, "@timestamp")))
    except (OSError, ValueError, TypeError, orjson.JSONDecodeError):
        return None
