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

from edgeguard.audit.segments import ACTIVE_NAME, rotated_segments
from edgeguard.ecs import iso_timestamp

__all__ = ["INTERNAL_ACTIONS", "TrailRecord", "parse_line", "read_trail", "trail_segments"]

#: the writer's bookkeeping records, hidden from a person unless asked for (``--all``)
INTERNAL_ACTIONS = frozenset({"audit-segment-start", "audit-checkpoint"})


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a third of the parse
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
    media_partition: bool = False  # a partition's record (its disk has one too)
    lost: int = 0

    @property
    def internal(self) -> bool:
        return self.action in INTERNAL_ACTIONS


_EMPTY: dict[str, Any] = {}


def _obj(rec: dict[str, Any], name: str) -> dict[str, Any]:
    value = rec.get(name, _EMPTY)
    return value if type(value) is dict else _EMPTY


def _text(node: dict[str, Any], name: str) -> str | None:
    value = node.get(name)
    if type(value) is str or value is None:  # the writer's usual case, checked first
        return value
    return None if isinstance(value, dict) else str(value)


def _texts(node: dict[str, Any], name: str) -> tuple[str, ...]:
    value = node.get(name)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return () if value is None or isinstance(value, dict) else (str(value),)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _device(volume: dict[str, Any]) -> str | None:
    if not volume:
        return None
    parts = [_text(volume, "vendor_name") or _text(volume, "vendor_id"),
             _text(volume, "product_name") or _text(volume, "product_id"),
             _text(volume, "serial_number")]
    named = [p.strip() for p in parts if p and p.strip()]
    return " ".join(named) if named else _text(volume, "device_name")


def _address(endpoint: dict[str, Any]) -> str | None:
    return _text(endpoint, "ip") or _text(endpoint, "mac")


def parse_line(line: bytes) -> TrailRecord:
    """One line as a record (plain dictionary look-ups: a report reads 100,000s)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return TrailRecord(line=line, valid=False)
    if not isinstance(rec, dict):
        return TrailRecord(line=line, valid=False)
    event, own = _obj(rec, "event"), _obj(rec, "edgeguard")
    finding, audit, media = _obj(own, "finding"), _obj(own, "audit"), _obj(own, "media")
    seq, lost = event.get("sequence"), audit.get("lost")
    return TrailRecord(
        line=line, valid=True,
        sequence=seq if isinstance(seq, int) else None,
        timestamp=_epoch(_text(rec, "@timestamp")),
        kind=_text(event, "kind") or "",
        action=_text(event, "action") or "",
        outcome=_text(event, "outcome") or "",
        severity=_text(own, "severity"),
        mode=_text(own, "mode"),
        rule_id=_text(_obj(rec, "rule"), "id"),
        host=_text(_obj(rec, "host"), "name") or "",
        source=_address(_obj(rec, "source")),
        destination=_address(_obj(rec, "destination")),
        message=_text(rec, "message") or "",
        finding_kind=_text(finding, "kind"),
        finding_subtype=_text(finding, "subtype"),
        would_act=_texts(own, "would_act"),
        would_change=_texts(own, "would_change"),
        media_verdict=_text(media, "verdict"),
        media_device=_device(_obj(rec, "volume")),
        media_partition=_text(_obj(rec, "volume"), "device_type") == "partition",
        lost=lost if isinstance(lost, int) else 0,
    )


def trail_segments(directory: Path) -> list[Path]:
    """Rotated segments oldest first, then the active one."""
    active = directory / ACTIVE_NAME
    return [*rotated_segments(directory), *([active] if active.exists() else [])]


_STAMP_PREFIX = b'{"@timestamp":"'
_STAMP_END = len(_STAMP_PREFIX) + len("2026-01-01T00:00:00.000000Z")


def _before(line: bytes, stamp: bytes) -> bool:
    """The record is older than ``stamp`` and is not the writer's bookkeeping: decided on
    the bytes (the writer's canonical JSON sorts ``@timestamp`` first, in UTC), so a long
    trail's old records are never parsed. Anything else is parsed and judged there."""
    return (line.startswith(_STAMP_PREFIX) and line[_STAMP_END - 1:_STAMP_END] == b"Z"
            and line[len(_STAMP_PREFIX):_STAMP_END] < stamp and b'"audit-' not in line)


def read_trail(directory: Path, since: float | None = None) -> Iterator[TrailRecord]:
    """Every complete line of every segment, in chain order (a trailing partial line,
    a power cut's, is left to the verifier to report). With ``since``, ordinary records
    older than it are skipped unparsed (bookkeeping records are always returned)."""
    stamp = None if since is None else iso_timestamp(since).encode()
    for path in trail_segments(directory):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # pruned between listing and reading
            continue
        for line in data.split(b"\n")[:-1]:
            if line and (stamp is None or not _before(line, stamp)):
                yield parse_line(line)
