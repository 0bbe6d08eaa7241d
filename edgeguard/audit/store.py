"""The segment store: the active segment's descriptor, rotation by rename, and opening a
new segment all or nothing.

It knows files, not the chain: the writer renders the header (:mod:`.render`) and hands
the line over; :meth:`SegmentStore.create` makes the new active segment hold exactly that
header or leaves nothing behind. What is still to do after a failure (move the active
file out of the way, then create the next one) is kept as a :class:`Reopen` plan, so a
retry repeats only the remaining steps and a rotation can never advance the chain head
without its segment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeguard.audit import records as rec
from edgeguard.audit import segments as seg
from edgeguard.audit.ownership import Ownership
from edgeguard.audit.segments import ACTIVE_NAME, SegmentEnd, segment_name
from edgeguard.events import Scalar
from edgeguard.fsutil import fsync_directory, write_whole

__all__ = ["Reopen", "SegmentStore", "SegmentUnavailable"]


class SegmentUnavailable(OSError):
    """The next segment could not be opened; the chain head is unchanged, retried later."""


@dataclass(slots=True)
class Reopen:
    """A segment to open (after a rotation, an I/O error or a recovery) and, if the
    active file still has to be moved out of the way first, its rotated name."""

    reason: str
    previous: str | None
    unclean_tail: int = 0
    rename_active: str | None = None


class SegmentStore:
    """Not thread-safe: the writer calls it under its lock."""

    def __init__(self, directory: Path, owner: Ownership, segment_size: int) -> None:
        self.directory = directory
        self.owner = owner
        self.segment_size = segment_size
        self.fd: int | None = None
        self.size = 0
        self.first_sequence = 0
        self.plan: Reopen | None = None
        self.discarded: str | None = None  # a segment set aside at start, said once
        self._aside_reported = False

    @property
    def active(self) -> Path:
        return self.directory / ACTIVE_NAME

    def continue_active(self, first_sequence: int) -> None:
        self.fd = os.open(self.active, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size
        self.first_sequence = first_sequence

    def full(self, last_sequence: int) -> bool:
        """Whether the active segment should rotate before the next record (never one
        holding only its header)."""
        return self.size >= self.segment_size and last_sequence >= self.first_sequence

    def append(self, line: bytes) -> None:
        assert self.fd is not None
        write_whole(self.fd, line, self.size)
        self.size += len(line)

    def sync(self) -> None:
        if self.fd is not None:
            os.fdatasync(self.fd)

    def close_active(self, plan: Reopen) -> None:
        """Stop appending to the active segment; ``plan`` says what to open next."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self.plan = plan

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def segment_fields(self, plan: Reopen) -> dict[str, Scalar]:
        """The header fields the store owns (the chain adds previous sequence and hash)."""
        fields: dict[str, Scalar] = {}
        if plan.previous is not None:
            fields["edgeguard.audit.previous_segment"] = plan.previous
        if plan.unclean_tail:
            fields["edgeguard.audit.unclean_tail_bytes"] = plan.unclean_tail
        if self.discarded and not self._aside_reported:
            fields["edgeguard.audit.set_aside"] = self.discarded
        return fields

    def prepare(self) -> Reopen:
        """The steps before the new file: move the old active segment to its rotated
        name, or set aside a new file whose removal failed last time."""
        plan = self.plan
        assert plan is not None
        assert self.fd is None
        if plan.rename_active is not None:
            if self.active.exists():
                os.rename(self.active, self.directory / plan.rename_active)
            plan.rename_active = None
        elif self.active.exists():  # a new segment whose removal failed: never ours now
            seg.set_aside(self.active, "uncommitted")
        return plan

    def create(self, header: bytes, first_sequence: int) -> int:
        """Create the active segment holding ``header``, all or nothing: the store's state
        changes only once the header is written and the directory synced; on failure
        the new file is removed (or set aside by the next :meth:`prepare`)."""
        fd = os.open(self.active, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
                     | os.O_CLOEXEC, self.owner.file_mode)
        try:
            os.fchmod(fd, self.owner.file_mode)
            write_whole(fd, header, 0)
            fsync_directory(self.directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)  # no header, no segment: leave nothing a reader could trip on
            with contextlib.suppress(OSError):
                self.active.unlink(missing_ok=True)
            raise
        self.fd, self.size, self.first_sequence = fd, len(header), first_sequence
        self._aside_reported = self._aside_reported or bool(self.discarded)
        self.plan = None
        return fd

    def suspect(self) -> str:
        """Close the active segment after an I/O error (renamed by the next open); its
        rotated name is returned."""
        old = segment_name(self.first_sequence)
        tail = 0
        if self.fd is not None:
            with contextlib.suppress(OSError):
                tail = max(0, os.fstat(self.fd).st_size - self.size)
        self.close_active(Reopen("io-error", old, tail, rename_active=old))
        return old

    def recovery_plan(self) -> Reopen:
        """What to open when the writer has no segment and no plan (a failed start)."""
        if self.plan is None:
            rename = segment_name(self.first_sequence) if self.active.exists() else None
            self.plan = Reopen("recovery", None, rename_active=rename)
        return self.plan

    def prune(self, now: float, retention: float,
              shipped: Callable[[], int | None] | None) -> Iterator[SegmentEnd]:
        """Delete rotated segments past retention (and shipped), oldest first."""
        for end in list(rec.prunable(self.directory, now, retention, shipped)):
            end.path.unlink()
            with contextlib.suppress(OSError):  # the unlink is done; the next sync persists it
                fsync_directory(self.directory)
            yield end
