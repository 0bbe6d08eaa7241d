"""Read the newest records and follow the log across rotations (``audit tail -f``).

Rotation is by rename only, so a follower keeps its open file descriptor: when the
active name points at another inode, it reads the old file to its end and then opens
the new one from the start. Only complete lines (ending in a newline) are returned.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from edgeguard.audit.chain import get_path
from edgeguard.audit.writer import ACTIVE_NAME

__all__ = ["SegmentTail", "follow_lines", "last_lines", "render_line"]

_CHUNK = 1 << 16
_MAX_FILES_PER_POLL = 64


def _tail_of(path: Path, count: int, end: int | None = None) -> list[bytes]:
    """The last ``count`` complete lines of ``path`` (up to byte ``end``)."""
    if count <= 0:
        return []
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size if end is None else end
        data = b""
        offset = size
        while offset > 0:
            offset = max(0, offset - _CHUNK)
            fh.seek(offset)
            data = fh.read(size - offset)
            if data.count(b"\n") > count:
                break
    cut = data.rfind(b"\n")
    if cut < 0:
        return []
    lines = data[:cut].split(b"\n")
    if offset > 0:
        lines = lines[1:]  # may be a partial line
    return lines[-count:]


def last_lines(directory: Path, count: int) -> list[bytes]:
    """The newest ``count`` records across the active and rotated segments."""
    segments = sorted(directory.glob("audit-*.jsonl"))
    if (directory / ACTIVE_NAME).exists():
        segments.append(directory / ACTIVE_NAME)
    out: list[bytes] = []
    for path in reversed(segments):
        if len(out) >= count:
            break
        try:
            out = _tail_of(path, count - len(out)) + out
        except FileNotFoundError:  # pruned or rotated under us
            continue
    return out


def _first_sequence(fh: BinaryIO) -> int | None:
    """The header's sequence of an open segment (its position is left unchanged)."""
    pos = fh.tell()
    fh.seek(0)
    line = fh.readline()
    fh.seek(pos)
    try:
        seq = get_path(orjson.loads(line), "event.sequence")
    except orjson.JSONDecodeError:
        return None
    return seq if isinstance(seq, int) else None


def _named_first(path: Path, fh: BinaryIO) -> int | None:
    """Where a segment starts: a rotated one by its name (the writer's, strictly
    increasing, so following names can never go round in circles, whatever a damaged
    header says); the active one by its header."""
    if path.name != ACTIVE_NAME:
        try:
            return int(path.name[6:-6])
        except ValueError:
            return None
    return _first_sequence(fh)


def _next_segment(directory: Path, after: int | None) -> Path:
    """The segment that follows the one starting at ``after``: a rotated one if the
    writer rotated more than once since we looked, else the active one."""
    if after is not None:
        for path in sorted(directory.glob("audit-*.jsonl")):
            try:
                first = int(path.name[6:-6])
            except ValueError:
                continue
            if first > after:
                return path
    return directory / ACTIVE_NAME


def _open_following(directory: Path, after: int | None) -> tuple[Path, BinaryIO] | None:
    """Open the segment after the one starting at ``after``, never skipping one.

    Looking (a glob) and opening are two steps: if the writer rotates in between, the
    active name already points past the segment we wanted. So after opening the active
    one, look again; if a rotated segment now follows ``after``, open that instead.
    None when the file vanished (between rename and create, or pruned): try later.
    """
    for _ in range(16):
        path = _next_segment(directory, after)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return None
        if path.name != ACTIVE_NAME or _next_segment(directory, after) == path:
            return path, fh
        fh.close()  # rotated under us: the one we want is now a rotated segment
    return None


def follow_lines(directory: Path, *, poll: float = 0.2,
                 stop: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """New complete lines appended to the log from now on, across any number of rotations."""
    active = directory / ACTIVE_NAME
    fh: BinaryIO | None = None
    current: int | None = None  # first sequence of the segment being read
    target = active
    from_start = False  # the first file is followed from its end, later ones from byte 0
    buffer = b""
    while not stop():
        if fh is None:
            if from_start:
                opened = _open_following(directory, current)
                if opened is None:  # between rename and create, or pruned
                    time.sleep(poll)
                    continue
                target, fh = opened
            else:
                try:
                    fh = target.open("rb")
                except FileNotFoundError:  # started between rename and create
                    time.sleep(poll)
                    continue
                fh.seek(0, os.SEEK_END)
            current, buffer = _named_first(target, fh), b""
        chunk = fh.read(_CHUNK)
        if chunk:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            yield from lines
            continue
        try:
            rotated = os.stat(active).st_ino != os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            rotated = True
        if rotated:
            buffer += fh.read()  # whatever was written just before the rename
            fh.close()
            *lines, _partial = buffer.split(b"\n")
            yield from lines
            fh, from_start, buffer = None, True, b""
            continue
        time.sleep(poll)
    if fh is not None:
        fh.close()


def _segment_for(directory: Path, sequence: int) -> Path:
    """The segment holding ``sequence`` (or the oldest one after it, if it was pruned)."""
    active = directory / ACTIVE_NAME
    try:
        with active.open("rb") as fh:
            first = _first_sequence(fh)
        if first is not None and first <= sequence:
            return active
    except FileNotFoundError:
        pass
    rotated = sorted(directory.glob("audit-*.jsonl"))
    chosen = rotated[0] if rotated else active
    for path in rotated:
        try:
            if int(path.name[6:-6]) <= sequence:
                chosen = path
        except ValueError:
            continue
    return chosen


class SegmentTail:
    """Records after a sequence number, read from the segment files (not from the
    writer), so a shipper that crashes resumes exactly where its cursor says."""

    def __init__(self, directory: Path, after: int) -> None:
        self.directory = directory
        self.after = after
        self._path = _segment_for(directory, after + 1)
        self._fh: BinaryIO | None = None
        self._first: int | None = None
        self._buffer = b""
        self._moving = False  # past the first segment: follow the writer's order

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def poll(self, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Up to ``limit`` new (sequence, line) pairs; [] when there is nothing new yet."""
        out: list[tuple[int, bytes]] = []
        files = 0
        while len(out) < limit and files < _MAX_FILES_PER_POLL:
            if self._fh is None and not self._open():
                return out
            assert self._fh is not None
            chunk = self._fh.read(_CHUNK)
            if not chunk:
                if not self._moved_on():
                    return out
                # Rotated since that read: the writer appends its rotation checkpoint to
                # the old file just before the rename, so read to its real end first.
                chunk = self._fh.read(_CHUNK)
            if not chunk:
                self.close()
                self._moving = True
                files += 1
                continue
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                seq = _sequence(line)
                if seq is not None and seq > self.after:
                    out.append((seq, line))
                    self.after = seq
        return out

    def _open(self) -> bool:
        """Open the segment to read next: the one holding the cursor at first, then each
        following one in turn (re-resolved if the writer rotates as we open it)."""
        if self._moving:
            opened = _open_following(self.directory, self._first)
            if opened is None:
                return False
            self._path, self._fh = opened
        else:
            try:
                self._fh = self._path.open("rb")
            except FileNotFoundError:  # rotated or pruned under us: look again
                self._path = _segment_for(self.directory, self.after + 1)
                return False
            first = _named_first(self._path, self._fh)
            holder = _segment_for(self.directory, self.after + 1)
            if first is not None and first > self.after + 1 and holder != self._path:
                self.close()  # the writer rotated as we opened: the cursor's segment moved
                self._path = holder
                return False
        self._first, self._buffer = _named_first(self._path, self._fh), b""
        return True

    def _moved_on(self) -> bool:
        """At the end of a file that is no longer the active segment."""
        assert self._fh is not None
        try:
            current = os.stat(self.directory / ACTIVE_NAME).st_ino
        except FileNotFoundError:
            return False  # between rename and create: wait for the new one
        return current != os.fstat(self._fh.fileno()).st_ino


def _sequence(line: bytes) -> int | None:
    try:
        seq = get_path(orjson.loads(line), "event.sequence")
    except orjson.JSONDecodeError:
        return None
    return seq if isinstance(seq, int) else None


def render_line(line: bytes) -> str:
    """One record as a human-readable line; a line that is not a record is shown as is."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return f"?? {line.decode('utf-8', 'replace')}"
    if not isinstance(rec, dict):
        return f"?? {line.decode('utf-8', 'replace')}"
    parts = [
        str(get_path(rec, "@timestamp")),
        f"#{get_path(rec, 'event.sequence')}",
        str(get_path(rec, "event.kind")),
        str(get_path(rec, "event.action")),
        str(get_path(rec, "event.outcome")),
    ]
    rule = get_path(rec, "rule.id")
    if rule:
        parts.append(f"rule={rule}")
    src = get_path(rec, "source.ip") or get_path(rec, "source.mac")
    dst = get_path(rec, "destination.ip")
    if src or dst:
        parts.append(f"{src or '-'}->{dst or '-'}")
    parts.append(str(get_path(rec, "message")))
    return " ".join(parts)
