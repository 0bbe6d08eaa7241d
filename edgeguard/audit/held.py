"""Records the disk cannot take yet: a bounded queue, and a count of what overflowed it.

The writer holds records here while the disk is full (or its segment was closed after an
I/O error) and writes them, in order, when it can again, followed by one record with the
exact number that did not fit (:func:`edgeguard.audit.records.lost_record`). The
writer's own records (pruning, I/O errors) are never dropped, whatever the limit.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from edgeguard.audit import records as rec
from edgeguard.clock import Clock
from edgeguard.events import AuditRecord

__all__ = ["HeldRecords"]


class HeldRecords:
    """Not thread-safe: the writer calls it under its lock."""

    def __init__(self, clock: Clock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.records: deque[AuditRecord] = deque()
        self.lost = 0  # since the last loss record was written
        self.lost_total = 0
        self._window: tuple[float, float] | None = None  # first and last loss

    def __len__(self) -> int:
        return len(self.records)

    def pending(self) -> bool:
        """Whether anything waits to be written (records, or a loss to report)."""
        return bool(self.records) or self.lost > 0

    def hold(self, record: AuditRecord, *, internal: bool = False) -> None:
        """Keep ``record`` (stamped now if it has no time yet), or count it as lost."""
        now = self.clock.now()
        if internal or len(self.records) < self.limit:
            if record.timestamp is None:  # stamped when it happened, not when written
                record = dataclasses.replace(record, timestamp=now)
            self.records.append(record)
            return
        self.lost += 1
        self.lost_total += 1
        self._window = (self._window[0] if self._window else now, now)

    def push_front(self, record: AuditRecord) -> None:
        """Put back a record that must be written before the others."""
        self.records.appendleft(record)

    def loss_record(self) -> AuditRecord | None:
        """The record saying how many were lost since the last one, if any were."""
        if not self.lost:
            return None
        now = self.clock.now()
        start, end = self._window or (now, now)
        return rec.lost_record(self.lost, start, end, self.limit, now)

    def loss_written(self) -> None:
        self.lost, self._window = 0, None
