"""The audit writer: ECS JSON lines, SHA-256 chained, group-synced, rotated by rename.

:class:`AuditWriter` is the one object the rest of edgeguard holds; it keeps the lock,
the order of the work and the fault policy, and delegates each job to a small part:

* :class:`~edgeguard.audit.render.ChainRenderer` renders a record into one canonical
  line chained to the head (a processor chain with the renderer last);
* :class:`~edgeguard.audit.store.SegmentStore` appends, rotates by rename at
  ``segment_size`` (``audit.jsonl`` becomes ``audit-<first sequence>.jsonl``, so tailers
  follow by inode) and opens each new segment, with its header, all or nothing;
* :class:`~edgeguard.audit.syncer.Syncer` fdatasyncs in groups, at most
  ``fsync_interval`` after the first unsynced write, outside the lock, and runs timers;
* :class:`~edgeguard.audit.sealing.Checkpointer` decides when a checkpoint is due
  (``checkpoint_interval``, also idle; ``checkpoint_records``; rotation; close) and
  seals it with the forward-secure key;
* :class:`~edgeguard.audit.held.HeldRecords` keeps what the disk cannot take yet.

``write()`` never raises into the caller's decision path. A full disk (ENOSPC/EDQUOT),
no descriptor to spare (EMFILE/ENFILE) or memory pressure hold the records in a bounded
queue (the overflow is counted), prune shipped segments past retention (disk full) and
retry; when the disk takes them again the queue is written followed by a record with
the exact number lost. A failure while opening a segment leaves the chain head where it
was and is retried the same way. EIO writing to the active segment closes it as
suspect, starts a new one and records the error. Ownership (root:<``audit.file_group``>,
0640 in a set-group-ID 2750 directory) is :mod:`edgeguard.audit.ownership`'s; a failure
to give files to the group is audited (``audit-ownership-refused``) and never stops it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from edgeguard.audit import records as rec
from edgeguard.audit import segments as seg
from edgeguard.audit.chain import GENESIS_HASH
from edgeguard.audit.held import HeldRecords
from edgeguard.audit.keys import KeyStore
from edgeguard.audit.ownership import DIRECTORY_MODE, Ownership
from edgeguard.audit.records import LOST, PRUNED, RESERVED_ACTIONS, SEGMENT_START
from edgeguard.audit.render import ChainRenderer, Rendered
from edgeguard.audit.sealing import Checkpointer
from edgeguard.audit.segments import ACTIVE_NAME, AuditWriteError, read_head, segment_name
from edgeguard.audit.store import Reopen, SegmentStore, SegmentUnavailable
from edgeguard.audit.syncer import Syncer
from edgeguard.clock import Clock
from edgeguard.ecs import Observer
from edgeguard.events import AuditRecord, EventKind, Scalar

__all__ = [
    "ACTIVE_NAME",
    "DIRECTORY_MODE",
    "LOST",
    "PRUNED",
    "RESERVED_ACTIONS",
    "SEGMENT_START",
    "TRANSIENT_ERRORS",
    "AuditWriteError",
    "AuditWriter",
    "SegmentUnavailable",
    "segment_name",
]

_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)
# Errors that say nothing about the segment: hold the records and retry, never close the
# segment as suspect (a descriptor flood, memory pressure, a full disk).
TRANSIENT_ERRORS = frozenset({*_SPACE_ERRORS, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                              errno.EAGAIN, errno.EINTR})


def _transient(exc: OSError) -> bool:
    return isinstance(exc, SegmentUnavailable) or exc.errno in TRANSIENT_ERRORS


class AuditWriter:
    """Thread-safe; ``write`` returns the record's sequence (0: held in memory)."""

    def __init__(self, directory: Path, *, clock: Clock, host: str,
                 segment_size: int = 64 * 1024**2, fsync_interval: float = 0.25,
                 file_mode: int = 0o640, file_group: int | None = None,
                 key_file: Path | None = None,
                 checkpoint_interval: float = 60.0, checkpoint_records: int = 10_000,
                 queue_limit: int = 10_000, retention: float | None = None,
                 shipped: Callable[[], int | None] | None = None,
                 retry_interval: float = 0.5, observer: Observer | None = None) -> None:
        self.directory = directory
        self.clock = clock
        self.observer = observer or Observer.local(host)
        self.fsync_interval = fsync_interval
        self.retention = retention
        self.shipped = shipped  # lowest sequence every shipper has delivered (None: no shippers)
        self.retry_interval = retry_interval
        self.owner = Ownership(directory, file_mode, file_group)
        self.store = SegmentStore(directory, self.owner, segment_size)
        self.sealing = Checkpointer(clock, interval=checkpoint_interval,
                                    records=checkpoint_records, retry_interval=retry_interval)
        self.held = HeldRecords(clock, queue_limit)
        self.records_written = self.write_errors = self.refused = self.pruned = 0
        self.closed = False
        self._lock = threading.Condition()
        self._dirty_since: float | None = None
        self._next_retry = 0.0
        self._ownership_problem = ""
        directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        with self._lock:
            self.chain = self._resume(host)
            self._own()
            self._open_keys(key_file)
        self.synced_sequence = self.chain.sequence
        self._syncer = Syncer(self._lock, self)
        self._syncer.start()

    def _resume(self, host: str) -> ChainRenderer:
        active = self.directory / ACTIVE_NAME
        self.store.discarded = seg.set_aside_headless(active)
        try:
            head = read_head(self.directory)
        except AuditWriteError:
            if not active.exists():
                raise  # a damaged rotated segment: a human must look
            # Damaged active segment (edited, or the disk garbled it): keep it aside,
            # continue from the newest rotated one and say so in the next header.
            self.store.discarded = seg.set_aside(active, "damaged")
            head = read_head(self.directory)
        if head is None:
            self.chain = ChainRenderer(clock=self.clock, host=host, chain_id=uuid.uuid4().hex,
                                       sequence=0, head_hash=GENESIS_HASH,
                                       observer=self.observer)
            self.store.plan = Reopen("new-chain", None)
            self._reopen()
            return self.chain
        self.chain = ChainRenderer(clock=self.clock, host=host, chain_id=head.chain_id,
                                   sequence=head.sequence, head_hash=head.hash,
                                   observer=self.observer)
        if head.unclean_tail or not active.exists():
            previous = segment_name(head.first_sequence) if active.exists() else None
            reason = "unclean-shutdown" if head.unclean_tail else "restart"
            self.store.plan = Reopen(reason, previous, head.unclean_tail, rename_active=previous)
            self._reopen()
        else:
            self.store.continue_active(head.first_sequence)
        return self.chain

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
            self._open_keys(key_file)
            self.sealing.configure(interval=checkpoint_interval, records=checkpoint_records)
            if queue_limit is not None:
                self.held.limit = queue_limit
            self.retention = retention if retention is not None else self.retention
            self.shipped = shipped if shipped is not None else self.shipped
            self._lock.notify_all()

    @property
    def head(self) -> tuple[int, str]:
        with self._lock:
            return self.chain.head

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    @property
    def keys(self) -> KeyStore | None:
        return self.sealing.keys

    @property
    def key_problem(self) -> str | None:
        return self.sealing.key_problem

    @property
    def checkpoints(self) -> int:
        return self.sealing.count

    @property
    def unrenderable(self) -> int:
        return self.chain.unrenderable

    @property
    def discarded(self) -> str | None:
        return self.store.discarded

    @property
    def segment_size(self) -> int:
        return self.store.segment_size

    @property
    def queued(self) -> int:
        return len(self.held)

    @property
    def lost_total(self) -> int:
        """Records that overflowed the memory queue since the writer started."""
        return self.held.lost_total

    def write(self, record: AuditRecord) -> int:
        """Append ``record``; never raises for disk trouble (see the module docstring)."""
        with self._lock:
            if record.action in rec.RESERVED_ACTIONS:
                self.refused += 1
                record = rec.internal_record("audit-reserved-action-refused",
                                   f"a component wrote the reserved action {record.action!r}",
                                   EventKind.PIPELINE_ERROR, {}, self.clock.now())
            if self.closed or self._pending() or self.store.fd is None:
                self.held.hold(record)
                return 0
            try:
                self._rotate_if_full()
                seq = self._append(record)
            except OSError as exc:
                self._fault(exc, record)
                return 0
            if self.sealing.counted():
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
            if self.closed:
                return
            self._retry_locked()
            if self.sealing.due():
                self._checkpoint_safely("interval")
            if self.retention is not None and not self.held:
                try:
                    self._prune_locked()
                except OSError:
                    self.write_errors += 1

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._retry_locked()
            self._checkpoint_safely("shutdown")
            try:
                self._sync_locked()
            except OSError:
                self.write_errors += 1
            self.store.close()
            self.closed = True
            self.sealing.close()
            self._lock.notify_all()
        self._syncer.join(timeout=5)

    # -- the syncer's side (called with the lock held) --------------------------------
    def next_work(self) -> float:
        now = self.clock.monotonic()
        waits = [self.sealing.next_due - now]
        if self._dirty_since is not None:
            waits.append(self._dirty_since + self.fsync_interval - now)
        if self._pending():
            waits.append(self._next_retry - now)
        return min(waits)

    def idle_wait(self) -> float:
        return self.retry_interval

    def begin_sync(self) -> tuple[int, int] | None:
        now = self.clock.monotonic()
        if self._dirty_since is None or self._dirty_since + self.fsync_interval > now:
            return None
        if self.store.fd is None:
            self._dirty_since = None
            return None
        try:
            fd = os.dup(self.store.fd)
        except OSError:  # no descriptor to spare (EMFILE): sync under the lock this time
            try:
                self._sync_locked()
            except OSError as exc:
                self.end_sync(self.chain.sequence, exc)
            return None
        self._dirty_since = None
        return fd, self.chain.sequence

    def end_sync(self, sequence: int, error: OSError | None) -> None:
        if error is not None:
            self._dirty_since = self.clock.monotonic()  # back off, then retry
            self._fault(error, None)
        else:
            self.synced_sequence = max(self.synced_sequence, sequence)

    def run_due(self) -> None:
        now = self.clock.monotonic()
        if self._pending() and self._next_retry <= now:
            self._next_retry = now + self.retry_interval
            self._retry_locked()
        if not self.closed and self.sealing.due():
            self._checkpoint_safely("interval")

    # -- faults -------------------------------------------------------------------
    def _pending(self) -> bool:
        return self.held.pending() or self.sealing.pending

    def _fault(self, exc: OSError, record: AuditRecord | None) -> None:
        self.write_errors += 1
        if record is not None:
            self.held.push_front(record)
        if exc.errno in _SPACE_ERRORS and self.retention is not None:
            with contextlib.suppress(OSError):
                self._prune_locked()
        if not _transient(exc):
            self._suspect(exc)

    def _suspect(self, exc: OSError) -> None:
        """EIO and friends: close the segment as suspect, start a new one, say why."""
        if self.store.fd is None:
            return
        old = self.store.suspect()
        with contextlib.suppress(OSError):
            self._reopen()  # else retried from the queue later
        self.held.push_front(rec.io_error_record(exc, old, self.clock.now()))
        self._retry_locked()

    def _retry_locked(self) -> None:
        """Write what waits, in order: the segment, a sealed checkpoint, the held
        records, then the count of those that did not fit."""
        held = self.held
        if not self._pending():
            return
        try:
            if self.store.fd is None:
                self.store.recovery_plan()
                self._reopen()
            if self.sealing.pending:
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
            if not _transient(exc):
                self._suspect(exc)

    # -- checkpoints and retention ---------------------------------------------------
    def _checkpoint_safely(self, reason: str) -> None:
        if self.store.fd is not None and not self.held.pending():
            try:
                self._checkpoint(reason)
                return
            except OSError as exc:
                self._fault(exc, None)
        self.sealing.postpone()

    def _checkpoint(self, reason: str) -> None:
        self._sync_locked()  # the sealed head must already be on disk
        record = self.sealing.record(chain_id=self.chain.chain_id, head=self.chain.head,
                                     segment_bytes=self.store.size, reason=reason)
        self._append(record)
        self.sealing.written()
        self._sync_locked()

    def _prune_locked(self) -> None:
        """Delete rotated segments past retention (and shipped), oldest first; record each."""
        assert self.retention is not None
        now = self.clock.now()
        for end in self.store.prune(now, self.retention, self.shipped):
            self.pruned += 1
            self._note(rec.pruned_record(end, now))

    def _note(self, note: AuditRecord) -> None:
        """Write one of the writer's own records now, or hold it (never dropped)."""
        if self._pending() or self.store.fd is None:
            self.held.hold(note, internal=True)
            return
        try:
            self._append(note)
        except OSError as exc:
            self._fault(exc, note)

    def _own(self, fd: int | None = None) -> None:
        """Give the directory and the active segment (or ``fd``, a new one) to the audit
        group, or say once why not: the trail then stays readable by root alone, so
        nothing is exposed while the group waits for the next start."""
        target = self.store.fd if fd is None else fd
        try:
            if fd is None:
                self.owner.own_directory()
            if target is not None:
                self.owner.own_file(target)
        except OSError as exc:  # OwnershipError, or the fchmod/fchown failing: say so
            if str(exc) != self._ownership_problem:
                self._ownership_problem = str(exc)
                self._note(rec.internal_record(
                    rec.OWNERSHIP_REFUSED, str(exc), EventKind.PIPELINE_ERROR,
                    {"error.message": str(exc), "group.id": str(self.owner.group)},
                    self.clock.now()))

    def _open_keys(self, key_file: Path | None) -> None:
        problem = self.sealing.open_keys(key_file)
        if problem is not None:
            self._note(rec.internal_record(
                rec.KEY_REFUSED, f"checkpoints stay unsealed: {problem}",
                EventKind.PIPELINE_ERROR, {"error.message": problem}, self.clock.now()))

    # -- appending and segments ---------------------------------------------------------
    def _append(self, record: AuditRecord, extra: dict[str, Scalar] | None = None) -> int:
        rendered = self.chain.render(record, extra)
        self.store.append(rendered.line)
        return self._advanced(rendered)

    def _advanced(self, rendered: Rendered) -> int:
        seq = self.chain.advance(rendered)
        self.records_written += 1
        if self._dirty_since is None:
            self._dirty_since = self.clock.monotonic()
            self._lock.notify_all()
        return seq

    def _reopen(self) -> None:
        """Open the segment the store's plan names; on any failure raise
        :class:`SegmentUnavailable` with the chain head unchanged (retried later)."""
        try:
            plan = self.store.prepare()
            header = self.chain.header(plan.reason, self.store.segment_fields(plan))
            fd = self.store.create(header.line, self.chain.sequence + 1)
        except OSError as exc:
            raise SegmentUnavailable(exc.errno, "cannot open the next audit segment: "
                                     f"{exc.strerror or exc}") from exc
        self._advanced(header)
        self._own(fd)

    def _rotate_if_full(self) -> None:
        if not self.store.full(self.chain.sequence):
            return
        self._checkpoint("rotation")
        previous = segment_name(self.store.first_sequence)
        self.store.close_active(Reopen("rotation", previous, rename_active=previous))
        self._reopen()

    def _sync_locked(self) -> None:
        if self._dirty_since is None or self.store.fd is None:
            return
        self.store.sync()
        self._dirty_since = None
        self.synced_sequence = self.chain.sequence
