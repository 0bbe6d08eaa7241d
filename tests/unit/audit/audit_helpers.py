"""Helpers for the audit tests: write a real log with the real writer, find its lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from edgeguard.audit.writer import ACTIVE_NAME, AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome

LogFactory = Callable[..., Path]


def sample_record(i: int) -> AuditRecord:
    return AuditRecord(
        action="scan-syn", message=f"10.0.0.{i % 250} probed 25 ports ({i})",
        kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
        source=Endpoint(ip=f"10.0.0.{i % 250}"), rule_id="net-scan",
        fields={"edgeguard.scan.ports": 25, "edgeguard.test.index": i},
    )


def write_log(directory: Path, count: int, *, segment_size: int = 1500,
              clock: FakeClock | None = None, **kw: object) -> Path:
    clock = clock or FakeClock()
    writer = AuditWriter(directory, clock=clock, host="kiosk-1", segment_size=segment_size,
                         fsync_interval=0.05, **kw)  # type: ignore[arg-type]
    try:
        for i in range(count):
            clock.advance(0.5)
            writer.write(sample_record(i))
    finally:
        writer.close()
    return directory


def segments(directory: Path) -> list[Path]:
    """Rotated segments oldest first, then the active one."""
    return [*sorted(directory.glob("audit-*.jsonl")), directory / ACTIVE_NAME]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def find_line(directory: Path, seq: int) -> tuple[Path, int]:
    for path in segments(directory):
        for index, line in enumerate(lines_of(path)):
            if orjson.loads(line)["event"]["sequence"] == seq:
                return path, index
    raise LookupError(seq)
