"""The records only the writer writes: segment headers, prune, loss and I/O error notes.

Their actions are reserved: a component that uses one gets an
``audit-reserved-action-refused`` record instead, so nobody can fake a prune or a
checkpoint through the ordinary write path.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path

from edgeguard.audit.checkpoint import CHECKPOINT
from edgeguard.audit.segments import SegmentEnd, rotated_segments, segment_end
from edgeguard.ecs import iso_timestamp
from edgeguard.events import AuditRecord, EventKind, Outcome, Scalar

__all__ = [
    "IO_ERROR",
    "KEY_REFUSED",
    "LOST",
    "OWNERSHIP_REFUSED",
    "PRUNED",
    "RESERVED_ACTIONS",
    "SEGMENT_START",
    "header_record",
    "internal_record",
    "io_error_record",
    "lost_record",
    "prunable",
    "pruned_record",
]

SEGMENT_START = "audit-segment-start"
PRUNED = "audit-segment-pruned"
LOST = "audit-records-lost"
IO_ERROR = "audit-io-error"
KEY_REFUSED = "audit-key-refused"
OWNERSHIP_REFUSED = "audit-ownership-refused"
RESERVED_ACTIONS = frozenset({SEGMENT_START, PRUNED, LOST, IO_ERROR, CHECKPOINT, KEY_REFUSED,
                              OWNERSHIP_REFUSED})


def internal_record(action: str, message: str, kind: EventKind, fields: dict[str, Scalar],
                    now: float | None) -> AuditRecord:
    return AuditRecord(action=action, message=message, kind=kind, category=("host",),
                       outcome=Outcome.SUCCESS if kind is EventKind.STATE else Outcome.FAILURE,
                       timestamp=now, fields=fields)


def header_record(reason: str) -> AuditRecord:
    return AuditRecord(action=SEGMENT_START, message=f"audit segment starts ({reason})",
                       kind=EventKind.STATE, category=("configuration",),
                       outcome=Outcome.SUCCESS)


def pruned_record(end: SegmentEnd, now: float) -> AuditRecord:
    return internal_record(
        PRUNED, f"retention: deleted {end.path.name} (records up to {end.last_sequence})",
        EventKind.STATE, {"edgeguard.audit.pruned_segment": end.path.name,
                          "edgeguard.audit.pruned_last_sequence": end.last_sequence,
                          "edgeguard.audit.pruned_last_hash": end.last_hash,
                          "event.end": iso_timestamp(end.last_time)}, now)


def lost_record(count: int, start: float, end: float, queue_limit: int,
                now: float) -> AuditRecord:
    return internal_record(
        LOST, f"{count} audit records were lost: the disk was full and the memory queue "
        f"({queue_limit}) overflowed", EventKind.PIPELINE_ERROR,
        {"edgeguard.audit.lost": count, "event.start": iso_timestamp(start),
         "event.end": iso_timestamp(end)}, now)


def io_error_record(exc: OSError, segment: str, now: float) -> AuditRecord:
    return internal_record(
        IO_ERROR, f"I/O error on {segment}: {exc.strerror}; segment closed as suspect",
        EventKind.PIPELINE_ERROR,
        {"error.code": errno.errorcode.get(exc.errno or 0, str(exc.errno)),
         "error.message": str(exc.strerror), "file.name": segment}, now)


def prunable(directory: Path, now: float, retention: float,
             shipped: Callable[[], int | None] | None) -> Iterator[SegmentEnd]:
    """Rotated segments past retention, oldest first, stopping at the first that is too
    young or that an enabled shipper has not delivered (``shipped`` None: no shippers)."""
    delivered = shipped() if shipped is not None else None
    for path in rotated_segments(directory):
        end = segment_end(path)
        if end is None or now - end.last_time < retention:
            return
        if shipped is not None and (delivered is None or delivered < end.last_sequence):
            return
        yield end
