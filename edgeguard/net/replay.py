"""Replay a capture file through the live path: the kernel's filter (interpreted), the
decoders and the detectors, on packet time.

The decision engine and audit writer used with ``--audit`` are told the time by
:class:`PacketClock`, so repeat suppression windows follow the capture, not the
wall clock of the machine replaying it.

Speed: compiled, a classic Ethernet pcap is read by :mod:`edgeguard.net.frameloop`,
which runs the filter and the decoder on each frame in place in the read buffer (a
dropped frame never becomes a Python object); other captures, a replay whose progress
line watches every frame, and the pure-Python build go frame by frame through the same
filter and decoder. Packets come :data:`BATCH` at a time, then that batch is fed to
the detectors. Each loop then keeps its own code and tables in the CPU caches;
alternating decoder and detectors per packet cost 15-20% more. The detectors see the
same packets in the same order, and the clock reads each packet's time while it is
fed, so findings (and what ``--audit`` records) are unchanged.

While a file replays, the cyclic garbage collector's young generation is allowed to
grow to :data:`GC_YOUNG` objects (the interpreter's default is 700): every packet
allocates a few acyclic objects (the packet, table keys) and a batch keeps 256
packets alive, so with the default the collector keeps promoting live packets and
then walking the detectors' large tables for nothing. The previous threshold is put
back when the replay ends.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.events import Finding
from edgeguard.net import compiled
from edgeguard.net.bpf import reseed
from edgeguard.net.config import NetworkConfig
from edgeguard.net.frameloop import BATCH, FrameLoop
from edgeguard.net.inspect import Chain, Inspector, build_chain
from edgeguard.net.linktype import ETHERNET, SUPPORTED, UnsupportedLinkType
from edgeguard.net.packet import Packet
from edgeguard.net.pcapfile import (
    PCAP_HEADER_SIZE,
    Frame,
    ReaderCounters,
    pcap_header,
    read_capture,
)

__all__ = ["BATCH", "GC_YOUNG", "PacketClock", "ReplayResult", "iter_findings",
           "replay_file"]

#: Young-generation threshold of the garbage collector during a replay.
GC_YOUNG = 10_000


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
    link_damaged: int = 0  # frames whose non-Ethernet link header could not be read


def iter_findings(path: Path, cfg: NetworkConfig, clock: PacketClock,
                  result: ReplayResult, chain: Chain | None = None, *,
                  watch: Callable[[Iterator[Frame]], Iterator[Frame]] | None = None,
                  ) -> Iterator[Finding]:
    """Findings as the capture produces them (``clock`` follows the packets); counters
    land in ``result`` when the file is done. Raises CaptureFormatError / OSError
    before the first frame for a file that cannot be read, and
    :class:`UnsupportedLinkType` at the end when frames of a link type we cannot
    decode were skipped (a pcap has one link type: then nothing was read). ``watch``
    sees the frames as they are read (a progress line:
    :class:`edgeguard.progress.FrameProgress`)."""
    reader = ReaderCounters()
    reseed()  # the filter's 1-in-N samples: the same frames on every replay of a file
    inspector = Inspector.for_replay(cfg, chain if chain is not None
                                     else build_chain(cfg, clock))
    feed = inspector.chain.feed
    loop = FrameLoop(inspector, reader)
    with _fewer_collections():
        for batch in _batches(path, loop, watch):
            yield from _feed(batch, feed, clock)
    if loop.last_ts is not None:
        clock.ts = loop.last_ts  # the last frame's time, filtered out or not
    yield from inspector.chain.finish()
    result.link_damaged = loop.link_damaged
    result.counters = {"file_frames": reader.frames,
                       "unsupported_linktype": reader.unsupported_linktype,
                       "link_damaged": result.link_damaged,
                       "truncated": reader.truncated, **inspector.counters()}
    if reader.unsupported_linktype:
        kinds = ", ".join(str(k) for k in sorted(reader.linktypes) if k not in SUPPORTED)
        raise UnsupportedLinkType(
            f"{path}: {reader.unsupported_linktype} frame(s) of link type {kinds} not "
            f"supported (read: Ethernet, Linux SLL/SLL2, raw IP, null/loopback, PPP, "
            f"Cisco HDLC)")


def _batches(path: Path, loop: FrameLoop,
             watch: Callable[[Iterator[Frame]], Iterator[Frame]] | None,
             ) -> Iterator[list[Packet]]:
    """The in-place loop over an Ethernet pcap nobody watches frame by frame (``watch``
    returning the frames it was given watches nothing), in the compiled build (in pure
    Python, indexing bytes one by one costs more than the reader's ``struct`` calls);
    frame tuples otherwise."""
    frames = read_capture(path, loop.reader, SUPPORTED)  # raises for a bad file
    watched = frames if watch is None else watch(frames)
    if watched is frames and compiled():
        with path.open("rb") as fh:
            head = pcap_header(fh.read(PCAP_HEADER_SIZE))
            if head is not None and head.linktype == ETHERNET:
                yield from loop.pcap(fh, head)
                return
    yield from loop.frames(watched)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the young generation's threshold to :data:`GC_YOUNG` (never lower it)."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _feed(batch: list[Packet], feed: Callable[[Packet], list[Finding]],
          clock: PacketClock) -> Iterator[Finding]:
    for pkt in batch:
        clock.ts = pkt.ts
        found = feed(pkt)
        if found:  # most packets find nothing
            yield from found


def replay_file(path: Path, cfg: NetworkConfig, chain: Chain | None = None) -> ReplayResult:
    result = ReplayResult()
    result.findings = list(iter_findings(path, cfg, PacketClock(), result, chain))
    return result
