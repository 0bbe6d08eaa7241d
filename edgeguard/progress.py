"""Progress of a long job on a terminal: frames, bytes, rate and time left, on one line.

Shown only when the stream is a terminal (a pipe or a file gets nothing, so scripts and
logs stay clean) and only once the job has run :data:`SHOW_AFTER` seconds (a short
job prints nothing). The line is redrawn at most every :data:`REDRAW` seconds and
erased at the end, so it never mixes with what the command prints on stdout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TextIO, TypeVar

from edgeguard.textsafe import escape, write_styled

__all__ = ["REDRAW", "SHOW_AFTER", "FrameProgress", "Sized"]

#: seconds a job runs before its progress line first appears
SHOW_AFTER = 1.0
#: seconds between two redraws of the line
REDRAW = 0.25
#: frames between two looks at the clock (keeps the per-frame cost to one addition)
_CHECK_EVERY = 1024
#: bytes of a pcap record header, counted with each frame's captured bytes
RECORD_OVERHEAD = 16


class Sized(Protocol):
    def __len__(self) -> int: ...


F = TypeVar("F", bound=tuple[float, int, Sized, int])
T = TypeVar("T")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class FrameProgress:
    """Counts the frames of a capture as they are read (:meth:`watch`) and draws the line.

    ``total`` is the file's size; bytes read are the frames' captured bytes plus a record
    header each (exact for pcap, close for pcapng), so the ETA is an estimate.
    """

    def __init__(self, total: int, stream: TextIO, *, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 show_after: float = SHOW_AFTER) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = _is_terminal(stream) if enabled is None else enabled
        self.clock = clock
        self.started = clock()
        self.show_after = show_after
        self.frames = 0
        self.bytes = 0
        self._next_draw = self.started + show_after
        self._drawn = False

    def watch(self, frames: Iterator[F]) -> Iterator[F]:
        """``frames`` unchanged, counted; the line is redrawn as time passes. Not on a
        terminal, ``frames`` itself (no per-frame cost at all)."""
        return self._counted(frames) if self.enabled else frames

    def _counted(self, frames: Iterator[F]) -> Iterator[F]:
        try:
            for frame in frames:
                self.frames += 1
                self.bytes += len(frame[2]) + RECORD_OVERHEAD
                if not self.frames % _CHECK_EVERY:
                    self._maybe_draw()
                yield frame
        finally:
            self.finish()

    def around(self, results: Iterable[T]) -> Iterator[T]:
        """``results`` unchanged; the progress line is erased before each one, so what
        the command prints for it starts on a clean line (the next redraw brings the
        progress back below it)."""
        for item in results:
            self.finish()
            yield item

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.bytes / elapsed
        done = min(self.bytes / self.total, 1.0)
        eta = (self.total - self.bytes) / rate if rate > 0 and done < 1 else 0.0
        return (f"{self.frames:,} frames  {_size(self.bytes)} of {_size(self.total)} "
                f"({done:.0%})  {_size(rate)}/s  {self.frames / elapsed:,.0f} frames/s  "
                f"ETA {_duration(eta)}")

    def _maybe_draw(self) -> None:
        now = self.clock()
        if now < self._next_draw:
            return
        self._next_draw = now + REDRAW
        write_styled("\r\x1b[2K" + escape(self.line(now)), self.stream)
        self._drawn = True

    def finish(self) -> None:
        """Erase the line (the command's own output follows on a clean line)."""
        if self._drawn:
            write_styled("\r\x1b[2K", self.stream)
            self._drawn = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except ValueError:
        return False
