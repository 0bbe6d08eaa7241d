"""The audit writer: ECS JSON lines, SHA-256 chained, group-synced, rotated by rename.

* One ``write()`` per record, so a killed process never leaves half a record (a power
  cut can; the next start notices and says so in the chain).
* ``fdatasync`` is grouped: at most ``fsync_interval`` after the first unsynced write,
  and always before a checkpoint; the directory is fsync'ed after create/rename/unlink.
* The active segment is ``audit.jsonl``; at ``segment_size`` it is renamed to
  ``audit-<first sequence>.jsonl`` (rename only, so tailers like Filebeat or Vector follow
  by inode) and a new active segment starts with a header record carrying the previous
  segment's name, last sequence and last hash.
* Checkpoints (:mod:`edgeguard.audit.checkpoint`) every ``checkpoint_interval`` (also
  when idle), every ``checkpoint_records`` records, at rotation and at close.
* ``write()`` never raises into the caller's decision path. On ENOSPC records wait in a
  bounded memory queue (the overflow is counted), old segments past retention and
  already shipped are pruned, and when space returns the queue is written followed by
  a record with the exact number lost. On EIO the segment is closed as suspect, a new
  one started and the error recorded.
* Ownership (root:<``audit.file_group``>, 0640 in a set-group-ID 2750 directory) is
  :mod:`edgeguard.audit.ownership`'s; a failure to give files to the group is audited
  (``audit-ownership-refused``) and never stops the writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeguard.audit import records as rec
from edgeguard.audit import segments as seg
from edgeguard.audit.chain import GENESIS_HASH, canonical, chain_hash
from edgeguard.audit.checkpoint import checkpoint_record
from edgeguard.audit.held import HeldRecords
from edgeguard.audit.keys import AuditKeyError, KeyStore
from edgeguard.audit.ownership import DIRECTORY_MODE, Ownership, OwnershipError
from edgeguard.audit.records import LOST, PRUNED, RESERVED_ACTIONS, SEGMENT_START
from edgeguard.audit.segments import ACTIVE_NAME, AuditWriteError, read_head, segment_name
from edgeguard.clock import Clock
from edgeguard.ecs import nest, record_fields
from edgeguard.events import AuditRecord, EventKind, Scalar
from edgeguard.fsutil import fsync_directory, write_whole

__all__ = [
    "ACTIVE_NAME",
    "DIRECTORY_MODE",
    "LOST",
    "PRUNED",
    "RESERVED_ACTIONS",
    "SEGMENT_START",
    "AuditWriteError",
    "AuditWriter",
    "segment_name",
]

_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)
# Errors that say nothing about the segment: hold the records and retry, never close the
# segment as suspect (a descriptor flood, memory pressure, a full disk).
TRANSIENT_ERRORS = frozenset({*_SPACE_ERRORS, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                              errno.EAGAIN, errno.EINTR})


class SegmentUnavailable(OSError):
    """The next segment could not be opened; the chain head is unchanged, retried later."""


@dataclass(slots=True)
class _Reopen:
    """A segment to open (after a rotation, an I/O error or a recovery) and, if the
    active file still has to be moved out of the way first, its rotated name."""

    reason: str
    previous: str | None
    unclean_tail: int = 0
    rename_active: str | None = None


class AuditWriter:
    """Thread-safe; ``write`` returns the record's sequence (0: held in memory, disk full)."""

    def __init__(self, directory: Path, *, clock: Clock, host: str,
                 segment_size: int = 64 * 1024**2, fsync_interval: float = 0.25,
                 file_mode: int = 0o640, file_group: int | None = None,
                 key_file: Path | None = None,
                 checkpoint_interval: float = 60.0, checkpoint_records: int = 10_000,
                 queue_limit: int = 10_000, retention: float | None = None,
                 shipped: Callable[[], int | None] | None = None,
                 retry_interval: float = 0.5) -> None:
        self.directory = directory
        self.clock = clock
        self.host = host
        self.segment_size = segment_size
        self.fsync_interval = fsync_interval
        self.owner = Ownership(directory, file_mode, file_group)
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_records = checkpoint_records
        self.held = HeldRecords(clock, queue_limit)
        self.retention = retention
        self.shipped = shipped  # lowest sequence every shipper has delivered (None: no shippers)
        self.retry_interval = retry_interval
        self.keys: KeyStore | None = None
        self.key_problem: str | None = None
        self.records_written = self.write_errors = self.unrenderable = 0
        self.refused = self.checkpoints = self.pruned = 0
        self._fd: int | None = None
        self._lock = threading.Condition()
        self._dirty_since: float | None = None
        self._closed = False
        self._since_checkpoint = 0
        self._next_checkpoint = clock.monotonic() + checkpoint_interval
        self._next_retry = 0.0
        self._aside_reported = False
        self._ownership_problem = ""
        # The next checkpoint may follow a lost epoch: the key was (re)opened, or a sealed
        # checkpoint could not be written and its head moved on.
        self._keys_started = False
        self._unwritten: tuple[AuditRecord, int, str] | None = None  # sealed, not on disk
        self._reopen_plan: _Reopen | None = None
        directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        with self._lock:
            self.discarded = seg.set_aside_headless(directory / ACTIVE_NAME)
            try:
                head = read_head(directory)
            except AuditWriteError:
                if not (directory / ACTIVE_NAME).exists():
                    raise  # a damaged rotated segment: a human must look
                # Damaged active segment (edited, or the disk garbled it): keep it aside,
                # continue from the newest rotated one and say so in the next header.
                self.discarded = seg.set_aside(directory / ACTIVE_NAME, "damaged")
                head = read_head(directory)
            self._resume(head)
            self._own()
            self._open_keys(key_file)
        self.synced_sequence = self._seq
        self._syncer = threading.Thread(target=self._sync_loop, name="audit-fsync", daemon=True)
        self._syncer.start()

    def _resume(self, head: seg.ChainHead | None) -> None:
        active = self.directory / ACTIVE_NAME
        if head is None:
            self.chain_id = uuid.uuid4().hex
            self._seq, self._hash = 0, GENESIS_HASH
            self._open_segment(reason="new-chain", previous=None)
            return
        self.chain_id = head.chain_id
        self._seq, self._hash = head.sequence, head.hash
        if head.unclean_tail or not active.exists():
            previous = None
            if active.exists():
                previous = segment_name(head.first_sequence)
                os.rename(active, self.directory / previous)
            self._open_segment(reason="unclean-shutdown" if head.unclean_tail else "restart",
                               previous=previous, unclean_tail=head.unclean_tail)
            return
        self._first_seq = head.first_sequence
        self._fd = os.open(active, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size

    # -- public -------------------------------------------------------------------
    def configure(self, *, key_file: Path | None = None, file_group: int | None = None,
                  checkpoint_interval: float | None = None,
                  checkpoint_records: int | None = None, queue_limit: int | None = None,
                  retention: float | None = None,
                  shipped: Callable[[], int | None] | None = None) -> None:
        """Apply the policy's audit settings to a running writer (start and reload)."""
        with self._lock:
            if file_group is not None and file_group != self.owner.group:
                self.owner.group = file_group  # new segments; the directory and active one now
                self._own()
            if self.keys is None:
                self._open_keys(key_file)
            if checkpoint_interval is not None:
                self.checkpoint_interval = float(checkpoint_interval)
                self._next_checkpoint = min(self._next_checkpoint,
                                            self.clock.monotonic() + checkpoint_interval)
            if checkpoint_records is not None:
                self.checkpoint_records = checkpoint_records
            if queue_limit is not None:
                self.held.limit = queue_limit
            self.retention = retention if retention is not None else self.retention
            self.shipped = shipped if shipped is not None else self.shipped
            self._lock.notify_all()

    @property
    def head(self) -> tuple[int, str]:
        with self._lock:
            return self._seq, self._hash

    @property
    def queued(self) -> int:
        return len(self.held)

    def write(self, record: AuditRecord) -> int:
        """Append ``record``; never raises for disk trouble (see the module docstring)."""
        with self._lock:
            if record.action in rec.RESERVED_ACTIONS:
                self.refused += 1
                record = rec.internal_record("audit-reserved-action-refused",
                                   f"a component wrote the reserved action {record.action!r}",
                                   EventKind.PIPELINE_ERROR, {}, self.clock.now())
            if self._closed or self.held or self._fd is None:
                return self._hold(record)
            try:
                self._rotate_if_full()
                seq = self._append(record)
            except OSError as exc:
                self._fault(exc, record)
                return 0
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_records:
                self._checkpoint_safely("records")
            return seq

    def flush(self) -> None:
        """Make everything written so far durable now."""
        with self._lock:
            try:
                self._sync_locked()
            except OSError as exc:
                self._fault(exc, None)

    def tick(self) -> None:
        """Periodic work (the daemon calls it every few seconds; the sync thread too):
        a due checkpoint, a retry of held records, retention pruning."""
        with self._lock:
            if self._closed:
                return
            self._retry_locked()
            if self.clock.monotonic() >= self._next_checkpoint:
                self._checkpoint_safely("interval")
            if self.retention is not None and not self.held:
                self._prune_locked()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._retry_locked()
            self._checkpoint_safely("shutdown")
            try:
                self._sync_locked()
            except OSError:
                self.write_errors += 1
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True
            if self.keys is not None:
                self.keys.close()
            self._lock.notify_all()
        self._syncer.join(timeout=5)

    # -- faults -------------------------------------------------------------------
    def _hold(self, record: AuditRecord, *, internal: bool = False) -> int:
        self.held.hold(record, internal=internal)
        return 0

    @property
    def lost_total(self) -> int:
        """Records that overflowed the memory queue since the writer started."""
        return self.held.lost_total

    def _fault(self, exc: OSError, record: AuditRecord | None) -> None:
        self.write_errors += 1
        if record is not None:
            self.held.push_front(record)
        if exc.errno in _SPACE_ERRORS and self.retention is not None:
            with contextlib.suppress(OSError):
                self._prune_locked()
        if isinstance(exc, SegmentUnavailable) or exc.errno in TRANSIENT_ERRORS:
            return  # hold and retry
        self._suspect(exc)

    def _pending(self) -> bool:
        return self.held.pending() or self._unwritten is not None

    def _suspect(self, exc: OSError) -> None:
        """EIO and friends: close the segment as suspect, start a new one, say why."""
        if self._fd is None:
            return
        old = segment_name(self._first_seq)
        try:
            tail = max(0, os.fstat(self._fd).st_size - self._size)
        except OSError:
            tail = 0
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        self._reopen_plan = _Reopen("io-error", old, tail, rename_active=old)
        with contextlib.suppress(OSError):
            self._reopen()  # else retried from the queue later
        note = rec.io_error_record(exc, old, self.clock.now())
        self.held.push_front(note)
        self._retry_locked()

    def _retry_locked(self) -> None:
        """Write held records in order; then the count of those that did not fit."""
        held = self.held
        if not self._pending():
            return
        try:
            if self._fd is None:
                if self._reopen_plan is None:
                    active = (self.directory / ACTIVE_NAME).exists()
                    self._reopen_plan = _Reopen("recovery", None, rename_active=segment_name(
                        self._first_seq) if active else None)
                self._reopen()
            if self._unwritten is not None:
                self._checkpoint("retry")  # the sealed one, before anything moves the head
            while held.records:
                self._rotate_if_full()
                self._append(held.records[0])
                held.records.popleft()
            loss = held.loss_record()
            if loss is not None:
                self._append(loss)
                held.loss_written()
        except OSError as exc:
            self.write_errors += 1
            if not isinstance(exc, SegmentUnavailable) and exc.errno not in TRANSIENT_ERRORS:
                self._suspect(exc)

    # -- checkpoints and retention ---------------------------------------------------
    def _checkpoint_safely(self, reason: str) -> None:
        if self._fd is not None and not self.held.pending():
            try:
                self._checkpoint(reason)
                return
            except OSError as exc:
                self._fault(exc, None)
        # not possible now (disk trouble): try again soon, not in a busy loop
        self._next_checkpoint = self.clock.monotonic() + min(self.retry_interval,
                                                             self.checkpoint_interval)

    def _checkpoint(self, reason: str) -> None:
        """Seal the head and write the checkpoint. A sealed checkpoint that could not be
        written is written verbatim by the next try while the head has not moved (the
        key has evolved: sealing again would lose its epoch); if the head moved, its
        epoch is lost and the next checkpoint says so (``started``)."""
        self._sync_locked()  # the sealed head must already be on disk
        unwritten = self._unwritten
        if unwritten is not None and unwritten[1:] != (self._seq, self._hash):
            self._unwritten = unwritten = None
            self._keys_started = self.keys is not None
        if unwritten is None:
            record = checkpoint_record(chain_id=self.chain_id, head_sequence=self._seq,
                                       head_hash=self._hash, segment_bytes=self._size,
                                       now=self.clock.now(), reason=reason, keys=self.keys,
                                       interval=self.checkpoint_interval,
                                       started=self._keys_started)
            self._keys_started = False
            unwritten = self._unwritten = (record, self._seq, self._hash)
        self._append(unwritten[0])
        self._unwritten = None
        self._sync_locked()
        self.checkpoints += 1
        self._since_checkpoint = 0
        self._next_checkpoint = self.clock.monotonic() + self.checkpoint_interval

    def _prune_locked(self) -> None:
        """Delete rotated segments past retention (and shipped), oldest first; record each."""
        assert self.retention is not None
        now = self.clock.now()
        for end in list(rec.prunable(self.directory, now, self.retention, self.shipped)):
            end.path.unlink()
            with contextlib.suppress(OSError):  # the unlink is done; the next sync persists it
                fsync_directory(self.directory)
            self.pruned += 1
            note = rec.pruned_record(end, now)
            self._note(note)

    def _note(self, note: AuditRecord) -> None:
        """Write one of the writer's own records now, or hold it (never dropped)."""
        if self.held or self._fd is None:
            self._hold(note, internal=True)
            return
        try:
            self._append(note)
        except OSError as exc:
            self._fault(exc, note)

    def _own(self, fd: int | None = None) -> None:
        """Give the directory and the active segment (or ``fd``, a new one) to the audit
        group, or say once why not: the trail then stays readable by root alone, so
        nothing is exposed while the group waits for the next start."""
        target = self._fd if fd is None else fd
        try:
            if fd is None:
                self.owner.own_directory()
            if target is not None:
                self.owner.own_file(target)
        except OwnershipError as exc:
            if str(exc) != self._ownership_problem:
                self._ownership_problem = str(exc)
                self._note(rec.internal_record(
                    rec.OWNERSHIP_REFUSED, str(exc), EventKind.PIPELINE_ERROR,
                    {"error.message": str(exc), "group.id": str(self.owner.group)},
                    self.clock.now()))

    def _open_keys(self, key_file: Path | None) -> None:
        if key_file is None or not key_file.exists():
            return
        try:
            self.keys = KeyStore(key_file)
            self._keys_started = True
        except (OSError, AuditKeyError) as exc:
            if self.key_problem != str(exc):
                self.key_problem = str(exc)
                self._note(rec.internal_record(
                    rec.KEY_REFUSED, f"checkpoints stay unsealed: {exc}",
                    EventKind.PIPELINE_ERROR, {"error.message": str(exc)}, self.clock.now()))

    # -- internals ----------------------------------------------------------------
    def _render(self, record: AuditRecord, extra: dict[str, Scalar] | None) -> tuple[bytes, str]:
        seq = self._seq + 1
        stamp = record.timestamp if record.timestamp is not None else self.clock.now()
        fields = record_fields(record, stamp, self.host)
        fields["event.sequence"] = seq
        fields["edgeguard.chain_id"] = self.chain_id
        if extra:
            fields.update(extra)
        body: dict[str, Any] = nest(fields)
        digest = chain_hash(self._hash, body)
        body["event"]["hash"] = digest
        return canonical(body) + b"\n", digest

    def _append(self, record: AuditRecord, extra: dict[str, Scalar] | None = None) -> int:
        line, digest = self._render_safely(record, extra)
        assert self._fd is not None
        write_whole(self._fd, line, self._size)
        self._size += len(line)
        return self._advance(digest)

    def _advance(self, digest: str) -> int:
        self._seq, self._hash = self._seq + 1, digest
        self.records_written += 1
        if self._dirty_since is None:
            self._dirty_since = self.clock.monotonic()
            self._lock.notify_all()
        return self._seq

    def _render_safely(self, record: AuditRecord,
                       extra: dict[str, Scalar] | None) -> tuple[bytes, str]:
        try:
            return self._render(record, extra)
        except ValueError as exc:  # CanonicalError, or colliding dotted names: keep a trace
            self.unrenderable += 1
            substitute = rec.internal_record("audit-record-unrenderable",
                                   f"a {record.action!r} record could not be rendered: {exc}"[:512],
                                   EventKind.PIPELINE_ERROR,
                                   {"edgeguard.audit.original_action": record.action[:128]},
                                   self.clock.now())
            return self._render(substitute, None)

    def _open_segment(self, *, reason: str, previous: str | None, unclean_tail: int = 0) -> None:
        """Create the active segment with its header, all or nothing: the chain head and
        the writer's state change only once the header is written and the directory
        synced; on any failure the new file is removed (or, if even that fails, set
        aside by the next try) and the error raised."""
        path = self.directory / ACTIVE_NAME
        extra: dict[str, Scalar] = {
            "edgeguard.audit.reason": reason,
            "edgeguard.audit.previous_sequence": self._seq,
            "edgeguard.audit.previous_hash": self._hash,
        }
        if previous is not None:
            extra["edgeguard.audit.previous_segment"] = previous
        if unclean_tail:
            extra["edgeguard.audit.unclean_tail_bytes"] = unclean_tail
        if self.discarded and not self._aside_reported:
            extra["edgeguard.audit.set_aside"] = self.discarded
        line, digest = self._render(rec.header_record(reason), extra)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     self.owner.file_mode)
        try:
            os.fchmod(fd, self.owner.file_mode)
            write_whole(fd, line, 0)
            fsync_directory(self.directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)  # no header, no segment: leave nothing a reader could trip on
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise
        self._fd, self._size, self._first_seq = fd, len(line), self._seq + 1
        self._aside_reported = self._aside_reported or bool(self.discarded)
        self._advance(digest)
        self._own(fd)

    def _reopen(self) -> None:
        """Carry out the pending :class:`_Reopen`; raise :class:`SegmentUnavailable`
        (head unchanged, plan kept for the next try) if any step fails."""
        plan = self._reopen_plan
        assert plan is not None
        assert self._fd is None
        active = self.directory / ACTIVE_NAME
        try:
            if plan.rename_active is not None:
                if active.exists():
                    os.rename(active, self.directory / plan.rename_active)
                plan.rename_active = None
            elif active.exists():  # a new segment whose removal failed: never ours now
                seg.set_aside(active, "uncommitted")
            self._open_segment(reason=plan.reason, previous=plan.previous,
                               unclean_tail=plan.unclean_tail)
        except OSError as exc:
            raise SegmentUnavailable(exc.errno, f"cannot open the next audit segment: "
                                     f"{exc.strerror or exc}") from exc
        self._reopen_plan = None

    def _rotate_if_full(self) -> None:
        if self._size < self.segment_size or self._seq < self._first_seq:
            return
        self._checkpoint("rotation")
        assert self._fd is not None
        previous = segment_name(self._first_seq)
        with contextlib.suppress(OSError):
            os.close(self._fd)  # synced by the checkpoint
        self._fd = None
        self._reopen_plan = _Reopen("rotation", previous, rename_active=previous)
        self._reopen()

    def _sync_locked(self) -> None:
        if self._dirty_since is None or self._fd is None:
            return
        os.fdatasync(self._fd)
        self._dirty_since = None
        self.synced_sequence = self._seq

    def _sync_unlocked(self) -> None:
        """Group fdatasync without holding the lock, so writers never wait for the disk
        (the fd is dup'ed: a rotation meanwhile syncs and closes its own)."""
        if self._fd is None:
            self._dirty_since = None
            return
        try:
            fd, seq = os.dup(self._fd), self._seq
        except OSError:  # no descriptor to spare (EMFILE): sync under the lock this time
            try:
                self._sync_locked()
            except OSError as exc:
                self._dirty_since = self.clock.monotonic()
                self._fault(exc, None)
            return
        self._dirty_since = None
        error: OSError | None = None
        self._lock.release()
        try:
            os.fdatasync(fd)
        except OSError as exc:
            error = exc
        finally:
            os.close(fd)
            self._lock.acquire()
        if error is not None:
            self._dirty_since = self.clock.monotonic()  # back off, then retry
            self._fault(error, None)
        else:
            self.synced_sequence = max(self.synced_sequence, seq)

    def _sync_loop(self) -> None:
        with self._lock:
            while not self._closed:
                now = self.clock.monotonic()
                waits = [self._next_checkpoint - now]
                if self._dirty_since is not None:
                    waits.append(self._dirty_since + self.fsync_interval - now)
                if self._pending():
                    waits.append(self._next_retry - now)
                if min(waits) > 0:
                    self._lock.wait(timeout=min(*waits, max(self.retry_interval, 0.05)))
                    continue
                if self._dirty_since is not None and \
                        self._dirty_since + self.fsync_interval <= now:
                    self._sync_unlocked()
                if self._pending() and self._next_retry <= now:
                    self._next_retry = now + self.retry_interval
                    self._retry_locked()
                if not self._closed and self.clock.monotonic() >= self._next_checkpoint:
                    self._checkpoint_safely("interval")
