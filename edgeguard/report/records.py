"""Audit records as the report and ``audit tail`` see them: one typed value per line.

Only the fields a person asks about are lifted out of the ECS JSON; the rest stays in
the line. A line that is not a JSON object becomes a record with ``valid`` False (shown,
never dropped: a damaged trail must be visible).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.chain import get_path
from edgeguard.audit.segments import ACTIVE_NAME, rotated_segments

__all__ = ["INTERNAL_ACTIONS", "TrailRecord", "parse_line", "read_trail", "trail_segments"]

#: the writer's bookkeeping records, hidden from a person unless asked for (``--all``)
INTERNAL_ACTIONS = frozenset({"audit-segment-start", "audit-checkpoint"})


@dataclass(frozen=True, slots=True)
class TrailRecord:
    line: bytes
    valid: bool
    sequence: int | None = None
    timestamp: float | None = None  # epoch seconds
    kind: str = ""
    action: str = ""
    outcome: str = ""
    severity: str | None = None  # minor / moderate / severe
    mode: str | None = None  # monitor / enforce
    rule_id: str | None = None
    host: str = ""
    source: str | None = None  # ip, else mac
    destination: str | None = None
    message: str = ""
    finding_kind: str | None = None
    finding_subtype: str | None = None
    would_act: tuple[str, ...] = ()
    would_change: tuple[str, ...] = ()
    media_verdict: str | None = None
    media_device: str | None = None  # vendor product serial
    lost: int = 0

    @property
    def internal(self) -> bool:
        return self.action in INTERNAL_ACTIONS


def _str(rec: dict[str, Any], path: str) -> str | None:
    value = get_path(rec, path)
    return None if value is None else str(value)


def _strs(rec: dict[str, Any], path: str) -> tuple[str, ...]:
    value = get_path(rec, path)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return () if value is None else (str(value),)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _device(rec: dict[str, Any]) -> str | None:
    parts = [_str(rec, "volume.vendor_name") or _str(rec, "volume.vendor_id"),
             _str(rec, "volume.product_name") or _str(rec, "volume.product_id"),
             _str(rec, "volume.serial_number")]
    named = [p.strip() for p in parts if p and p.strip()]
    return " ".join(named) if named else _str(rec, "volume.device_name")


def parse_line(line: bytes) -> TrailRecord:
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return TrailRecord(line=line, valid=False)
    if not isinstance(rec, dict):
        return TrailRecord(line=line, valid=False)
    seq = get_path(rec, "event.sequence")
    lost = get_path(rec, "edgeguard.audit.lost")
    return TrailRecord(
        line=line, valid=True,
        sequence=seq if isinstance(seq, int) else None,
        timestamp=_epoch(_str(rec, "@timestamp")),
        kind=_str(rec, "event.kind") or "",
        action=_str(rec, "event.action") or "",
        outcome=_str(rec, "event.outcome") or "",
        severity=_str(rec, "edgeguard.severity"),
        mode=_str(rec, "edgeguard.mode"),
        rule_id=_str(rec, "rule.id"),
        host=_str(rec, "host.name") or "",
        source=_str(rec, "source.ip") or _str(rec, "source.mac"),
        destination=_str(rec, "destination.ip") or _str(rec, "destination.mac"),
        message=_str(rec, "message") or "",
        finding_kind=_str(rec, "edgeguard.finding.kind"),
        finding_subtype=_str(rec, "edgeguard.finding.subtype"),
        would_act=_strs(rec, "edgeguard.would_act"),
        would_change=_strs(rec, "edgeguard.would_change"),
        media_verdict=_str(rec, "edgeguard.media.verdict"),
        media_device=_device(rec),
        lost=lost if isinstance(lost, int) else 0,
    )


def trail_segments(directory: Path) -> list[Path]:
    """Rotated segments oldest first, then the active one."""
    active = directory / ACTIVE_NAME
    return [*rotated_segments(directory), *([active] if active.exists() else [])]


def read_trail(directory: Path) -> Iterator[TrailRecord]:
    """Every complete line of every segment, in chain order (a trailing partial line,
    a power cut's, is left to the verifier to report)."""
    for path in trail_segments(directory):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # pruned between listing and reading
            continue
        for line in data.split(b"\n")[:-1]:
            if line:
                yield parse_line(line)
