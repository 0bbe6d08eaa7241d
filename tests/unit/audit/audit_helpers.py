"""Helpers for the audit tests: write a real log with the real writer, find its lines."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.chain import canonical
from edgeguard.audit.writer import ACTIVE_NAME, AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome

LogFactory = Callable[..., Path]

_V2_FIELDS = ("version", "interval", "started")


def checkpoint_mac(key: bytes, chain_id: str, cp: dict[str, Any]) -> str:
    """The MAC a checkpoint carries, computed as an intruder holding ``key`` would."""
    signed = {"chain_id": chain_id,
              **{k: cp[k] for k in ("head_sequence", "head_hash", "segment_bytes", "time",
                                    "epoch", "key_id")}}
    if "version" in cp:
        signed.update({k: cp[k] for k in _V2_FIELDS})
    return hmac.new(key, canonical(signed), hashlib.sha256).hexdigest()


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
