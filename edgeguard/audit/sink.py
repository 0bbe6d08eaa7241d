"""Where audit records go: the protocol every component writes through."""

from __future__ import annotations

from typing import Protocol

from edgeguard.events import AuditRecord

__all__ = ["AuditSink", "MemorySink"]


class AuditSink(Protocol):
    def write(self, record: AuditRecord) -> int:
        """Append a record durably (group-synced); return its sequence number."""


class MemorySink:
    """Keeps records in a list: for tests and for ``replay`` without ``--audit``."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> int:
        self.records.append(record)
        return len(self.records)
