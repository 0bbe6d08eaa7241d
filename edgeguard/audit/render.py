"""Render and chain: an :class:`AuditRecord` becomes one canonical, hash-chained line.

In structlog's spirit the flat ECS fields pass through a short chain of processors
(sequence, chain id, the writer's own fields) and the renderer comes last: nest, hash
against the chain head (:func:`edgeguard.audit.chain.chain_hash`), canonical JSON.
Rendering never changes the head; :meth:`ChainRenderer.advance` does, once the line is
on disk, so a failed write leaves the chain exactly where it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeguard.audit import records as rec
from edgeguard.audit.chain import canonical, chain_hash
from edgeguard.clock import Clock
from edgeguard.ecs import Observer, nest, record_fields
from edgeguard.events import AuditRecord, EventKind, Scalar

__all__ = ["ChainRenderer", "Processor", "Rendered"]

Fields = dict[str, Scalar]
Processor = Callable[[Fields], Fields]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A record ready to append: its line (with the newline) and its chain hash."""

    line: bytes
    digest: str


def _set(name: str, value: Scalar) -> Processor:
    def processor(fields: Fields) -> Fields:
        fields[name] = value
        return fields
    return processor


def _merge(extra: Mapping[str, Scalar]) -> Processor:
    def processor(fields: Fields) -> Fields:
        fields.update(extra)
        return fields
    return processor


class ChainRenderer:
    """The chain head (sequence, hash) of one chain and the rendering against it."""

    def __init__(self, *, clock: Clock, host: str, chain_id: str, sequence: int,
                 head_hash: str, observer: Observer | None = None) -> None:
        self.clock = clock
        self.host = host
        self.observer = dict((observer or Observer.local(host)).ecs_fields())
        self.chain_id = chain_id
        self.sequence = sequence
        self.hash = head_hash
        self.unrenderable = 0

    @property
    def head(self) -> tuple[int, str]:
        return self.sequence, self.hash

    def render(self, record: AuditRecord, extra: Mapping[str, Scalar] | None = None,
               ) -> Rendered:
        """The next line; a record that cannot be rendered becomes a trace of it."""
        try:
            return self.render_strict(record, extra)
        except ValueError as exc:  # CanonicalError, or colliding dotted names
            self.unrenderable += 1
            substitute = rec.internal_record(
                "audit-record-unrenderable",
                f"a {record.action!r} record could not be rendered: {exc}"[:512],
                EventKind.PIPELINE_ERROR,
                {"edgeguard.audit.original_action": record.action[:128]}, self.clock.now())
            return self.render_strict(substitute, None)

    def render_strict(self, record: AuditRecord,
                      extra: Mapping[str, Scalar] | None = None) -> Rendered:
        stamp = record.timestamp if record.timestamp is not None else self.clock.now()
        fields = record_fields(record, stamp, self.host, self.observer)
        chain: list[Processor] = [_set("event.sequence", self.sequence + 1),
                                  _set("edgeguard.chain_id", self.chain_id)]
        if extra:
            chain.append(_merge(extra))
        for processor in chain:
            fields = processor(fields)
        body: dict[str, Any] = nest(fields)
        digest = chain_hash(self.hash, body)
        body["event"]["hash"] = digest
        return Rendered(canonical(body) + b"\n", digest)

    def header(self, reason: str, segment_fields: Mapping[str, Scalar]) -> Rendered:
        """The ``audit-segment-start`` record of a new segment after the current head."""
        extra: Fields = {"edgeguard.audit.reason": reason,
                         "edgeguard.audit.previous_sequence": self.sequence,
                         "edgeguard.audit.previous_hash": self.hash, **segment_fields}
        return self.render_strict(rec.header_record(reason), extra)

    def advance(self, rendered: Rendered) -> int:
        """The line is on disk: it is the new head."""
        self.sequence, self.hash = self.sequence + 1, rendered.digest
        return self.sequence
