"""``replay``'s frame loop: a classic pcap file's frames filtered and decoded in place.

The file is read in :data:`CHUNK`-sized ``bytes`` (never all at once: a day's capture
may be larger than memory). Each record is walked at its offset in the chunk: the
filter reads the frame there (:meth:`edgeguard.net.bpfjit.Filter.at`) and the decoder
too (:func:`edgeguard.net.decode.decode_at`), so a frame the filter drops never becomes
a Python object (no frame tuple, no bytes copy, not even its timestamp), and a kept one
costs its :class:`~edgeguard.net.packet.Packet` and the payload bytes the packet holds.
Compiled with mypyc the loop is C: byte indexing, int arithmetic and direct calls.

Packets come out :data:`BATCH` at a time (``replay`` feeds a batch to the detectors,
then reads on). The counts are the :class:`~edgeguard.net.inspect.Inspector`'s and the
reader's as if each frame had gone through :meth:`Inspector.packet`; a damaged record
ends the file with ``truncated`` counted, as :func:`edgeguard.net.pcapfile.read_capture`
does. Other files (pcapng, link types other than Ethernet) go through :meth:`frames`:
the same filter and decoder, one frame tuple at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from edgeguard.net.decode import decode_at
from edgeguard.net.inspect import Inspector
from edgeguard.net.linktype import ETHERNET, to_ethernet
from edgeguard.net.packet import Packet
from edgeguard.net.pcapfile import (
    PCAP_RECORD_HEADER,
    Frame,
    PcapHeader,
    ReaderCounters,
    count_records,
)

__all__ = ["BATCH", "CHUNK", "FrameLoop"]

#: Packets decoded before they are handed on (``replay`` feeds them to the detectors).
BATCH: Final = 256
#: Bytes read from the file at a time (a record larger than this is read whole).
CHUNK: Final = 1 << 20
#: A captured length above this is a damaged record (as in pcapfile).
MAX_CAPLEN: Final = 0x4000000


class FrameLoop:
    """Frames -> filter -> decode, in batches; :attr:`last_ts` is the time of the last
    frame read (filtered out or not), :attr:`link_damaged` counts frames whose
    non-Ethernet link header could not be rewritten."""

    def __init__(self, inspector: Inspector, reader: ReaderCounters, batch: int = BATCH,
                 chunk: int = CHUNK) -> None:
        self.inspector = inspector
        self.reader = reader
        self.batch = batch
        self.chunk = chunk
        self.last_ts: float | None = None
        self.link_damaged = 0

    def frames(self, frames: Iterable[Frame]) -> Iterator[list[Packet]]:
        """Frame tuples (any capture, any supported link type)."""
        to_packet = self.inspector.packet
        out: list[Packet] = []
        for ts, wire_len, raw, linktype in frames:
            self.last_ts = ts
            data = raw if linktype == ETHERNET else to_ethernet(linktype, raw)
            if data is None:
                self.link_damaged += 1
                continue
            pkt = to_packet(data, ts, wire_len)
            if pkt is not None:
                out.append(pkt)
                if len(out) >= self.batch:
                    yield out
                    out = []
        if out:
            yield out

    def pcap(self, fh: BinaryIO, head: PcapHeader) -> Iterator[list[Packet]]:  # noqa: PLR0912, PLR0915
        """The records of an Ethernet pcap file; ``fh`` is just past its global header."""
        insp = self.inspector
        keep = insp.keep
        counters = insp.decode_counters
        little, unit, batch = head.little, head.unit, self.batch
        buf = b""
        size = pos = 0
        last = -1  # offset in buf of the last record read (its time: last_ts)
        records = dropped = 0
        out: list[Packet] = []
        try:
            while True:
                if pos + PCAP_RECORD_HEADER > size:
                    need = PCAP_RECORD_HEADER
                else:
                    caplen = _u32(buf, pos + 8, little)
                    wire = _u32(buf, pos + 12, little)
                    start = pos + PCAP_RECORD_HEADER
                    if caplen > MAX_CAPLEN:
                        self.reader.truncated += 1
                        break
                    end = start + caplen
                    if end <= size:
                        records += 1
                        last = pos
                        pos = end
                        if keep is not None:
                            snap = keep.at(buf, start, caplen, wire)
                            if not snap:
                                dropped += 1
                                continue
                            if snap < caplen:
                                end = start + snap
                        pkt = decode_at(buf, start, end, _ts(buf, last, little, unit), wire,
                                        c=counters)
                        if pkt is not None:
                            out.append(pkt)
                            if len(out) >= batch:
                                yield out
                                out = []
                        continue
                    need = PCAP_RECORD_HEADER + caplen
                # the next record runs past the chunk: read on
                if last >= 0:
                    self.last_ts = _ts(buf, last, little, unit)
                    last = -1
                more = fh.read(max(self.chunk, need - (size - pos)))
                if not more:
                    if pos < size:
                        self.reader.truncated += 1
                    break
                buf = buf[pos:] + more if pos < size else more
                size, pos = len(buf), 0
            if last >= 0:
                self.last_ts = _ts(buf, last, little, unit)
            if out:
                yield out
        finally:
            count_records(self.reader, ETHERNET, records, wanted=True)
            insp.frames += records
            insp.filtered_out += dropped


def _ts(buf: bytes, rec: int, little: bool, unit: float) -> float:
    """The time of the record whose header starts at ``rec``."""
    return _u32(buf, rec, little) + _u32(buf, rec + 4, little) * unit


def _u32(buf: bytes, at: int, little: bool) -> int:
    """The unsigned 32-bit number at ``at`` in the file's byte order (a native call
    compiled: bytes indexing, no ``struct`` tuple)."""
    if little:
        return buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)
    return (buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]
