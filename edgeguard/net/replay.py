"""Replay a capture file through the live path: the kernel's filter (interpreted), the
decoders and the detectors, on packet time.

The decision engine and audit writer used with ``--audit`` are told the time by
:class:`PacketClock`, so repeat suppression windows follow the capture, not the
wall clock of the machine replaying it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.events import Finding
from edgeguard.net.config import NetworkConfig
from edgeguard.net.inspect import Chain, Inspector, build_chain
from edgeguard.net.pcapfile import ReaderCounters, read_capture

__all__ = ["PacketClock", "ReplayResult", "iter_findings", "replay_file"]


class PacketClock:
    """A :class:`~edgeguard.clock.Clock` that reads the time of the last packet."""

    def __init__(self, start: float = 0.0) -> None:
        self.ts = start

    def now(self) -> float:
        return self.ts

    def monotonic(self) -> float:
        return self.ts


@dataclass(slots=True)
class ReplayResult:
    findings: list[Finding] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


def iter_findings(path: Path, cfg: NetworkConfig, clock: PacketClock,
                  result: ReplayResult, chain: Chain | None = None) -> Iterator[Finding]:
    """Findings as the capture produces them (``clock`` follows the packets); counters
    land in ``result`` when the file is done. Raises CaptureFormatError / OSError
    before the first frame for a file that cannot be read."""
    reader = ReaderCounters()
    inspector = Inspector.for_replay(cfg, chain if chain is not None
                                     else build_chain(cfg, clock))
    inspect = inspector.frame
    for ts, wire_len, data, _linktype in read_capture(path, reader):
        clock.ts = ts
        found = inspect(data, ts, wire_len)
        if found:  # most frames find nothing
            yield from found
    yield from inspector.chain.finish()
    result.counters = {"file_frames": reader.frames,
                       "unsupported_linktype": reader.unsupported_linktype,
                       "truncated": reader.truncated, **inspector.counters()}


def replay_file(path: Path, cfg: NetworkConfig, chain: Chain | None = None) -> ReplayResult:
    result = ReplayResult()
    result.findings = list(iter_findings(path, cfg, PacketClock(), result, chain))
    return result
