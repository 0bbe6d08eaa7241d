"""Checkpointing: when a checkpoint is due, the key it is sealed with, and the rule that a
sealed checkpoint is never sealed twice.

The record itself is :func:`edgeguard.audit.checkpoint.checkpoint_record`. Sealing evolves
the key, so a sealed checkpoint that could not be written is kept and written verbatim
by the next try while the chain head has not moved; if the head moved (a new segment
after an I/O error) its epoch is lost, and the next checkpoint is marked ``started`` so
the verifier names the one lost epoch instead of refusing a jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeguard.audit.checkpoint import checkpoint_record
from edgeguard.audit.keys import AuditKeyError, KeyStore
from edgeguard.clock import Clock
from edgeguard.events import AuditRecord

__all__ = ["Checkpointer"]


@dataclass(frozen=True, slots=True)
class _Unwritten:
    record: AuditRecord
    head: tuple[int, str]


class Checkpointer:
    """Not thread-safe: the writer calls it under its lock."""

    def __init__(self, clock: Clock, *, interval: float, records: int,
                 retry_interval: float) -> None:
        self.clock = clock
        self.interval = float(interval)
        self.records = records
        self.retry_interval = retry_interval
        self.keys: KeyStore | None = None
        self.key_problem: str | None = None
        self.count = 0  # checkpoints written
        self.since = 0  # records since the last checkpoint
        self.next_due = clock.monotonic() + interval
        # The next checkpoint may follow a lost epoch: the key was (re)opened, or a
        # sealed checkpoint could not be written and the head moved on.
        self._started = False
        self._unwritten: _Unwritten | None = None

    @property
    def pending(self) -> bool:
        """A sealed checkpoint waits to be written."""
        return self._unwritten is not None

    def open_keys(self, key_file: Path | None) -> str | None:
        """Open the evolving key; a new problem with it is returned (to be audited once)."""
        if self.keys is not None or key_file is None or not key_file.exists():
            return None
        try:
            self.keys = KeyStore(key_file)
        except (OSError, AuditKeyError) as exc:
            if self.key_problem != str(exc):
                self.key_problem = str(exc)
                return str(exc)
            return None
        self._started = True
        return None

    def configure(self, *, interval: float | None, records: int | None) -> None:
        if interval is not None:
            self.interval = float(interval)  # a policy Duration: plain seconds
            self.next_due = min(self.next_due, self.clock.monotonic() + interval)
        if records is not None:
            self.records = records

    def counted(self) -> bool:
        """One more record written; whether that many records call for a checkpoint."""
        self.since += 1
        return self.since >= self.records

    def due(self) -> bool:
        return self.clock.monotonic() >= self.next_due

    def record(self, *, chain_id: str, head: tuple[int, str], segment_bytes: int,
               reason: str) -> AuditRecord:
        """The checkpoint to write after ``head`` (already durable): the unwritten sealed
        one if it still seals this head, else a newly sealed one."""
        unwritten = self._unwritten
        if unwritten is not None and unwritten.head != head:
            self._unwritten = unwritten = None
            self._started = self.keys is not None
        if unwritten is None:
            record = checkpoint_record(chain_id=chain_id, head_sequence=head[0],
                                       head_hash=head[1], segment_bytes=segment_bytes,
                                       now=self.clock.now(), reason=reason, keys=self.keys,
                                       interval=self.interval, started=self._started)
            self._started = False
            unwritten = self._unwritten = _Unwritten(record, head)
        return unwritten.record

    def written(self) -> None:
        self._unwritten = None
        self.count += 1
        self.since = 0
        self.next_due = self.clock.monotonic() + self.interval

    def postpone(self) -> None:
        """Not possible now (disk trouble): try again soon, not in a busy loop."""
        self.next_due = self.clock.monotonic() + min(self.retry_interval, self.interval)

    def close(self) -> None:
        if self.keys is not None:
            self.keys.close()
