"""Readers for pcap and pcapng capture files (our own, with ``struct``).

Both byte orders, micro- and nanosecond pcap, pcapng ``if_tsresol``. The caller names the
link types it reads (Ethernet, link type 1, by default; ``wifi classify`` asks for the
802.11 ones): frames of other link types are counted as unsupported and skipped.
A truncated or corrupt file ends the iteration with the damage counted, never an
exception mid-way; a file that is neither format raises :class:`CaptureFormatError`
before the first frame (``replay`` turns it into exit code 2).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

__all__ = [
    "ETHERNET_ONLY",
    "PCAP_HEADER_SIZE",
    "CaptureFormatError",
    "Frame",
    "PcapHeader",
    "ReaderCounters",
    "count_records",
    "pcap_header",
    "read_capture",
]

LINKTYPE_ETHERNET = 1
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}  # fmt: skip
PCAP_HEADER_SIZE: Final = 24  # the global header; records follow
PCAP_RECORD_HEADER: Final = 16  # seconds, fraction, captured length, wire length
PCAPNG_SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IDB, PB_OBSOLETE, SPB, EPB = 1, 2, 3, 6
OPT_IF_TSRESOL = 9


class CaptureFormatError(ValueError):
    """Not a pcap or pcapng file."""


class Frame(NamedTuple):
    ts: float  # epoch seconds
    wire_len: int  # original length on the wire
    data: bytes  # the captured bytes (at most the snap length)
    linktype: int = LINKTYPE_ETHERNET


@dataclass(slots=True)
class ReaderCounters:
    frames: int = 0
    unsupported_linktype: int = 0
    truncated: int = 0  # damaged records/blocks (the rest of the file is skipped)
    linktypes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """A classic pcap file's global header (what reading its records needs)."""

    little: bool  # byte order of the record headers
    unit: float  # seconds per fraction tick (micro- or nanoseconds)
    linktype: int


def pcap_header(head: bytes) -> PcapHeader | None:
    """The header of a classic pcap file from its first 24 bytes; None when ``head``
    is not one (too short, or pcapng: :func:`read_capture` reads those)."""
    magic = PCAP_MAGICS.get(bytes(head[:4]))
    if magic is None or len(head) < PCAP_HEADER_SIZE:
        return None
    order, unit = magic
    linktype = struct.unpack_from(order + "I", head, 20)[0] & 0x0FFFFFFF
    return PcapHeader(order == "<", unit, linktype)


ETHERNET_ONLY = frozenset({LINKTYPE_ETHERNET})
#: Frame(...) without the NamedTuple's Python-level __new__ (one per frame read).
_frame = tuple.__new__


def read_capture(path: Path, counters: ReaderCounters | None = None,
                 linktypes: frozenset[int] = ETHERNET_ONLY) -> Iterator[Frame]:
    """Frames of a pcap or pcapng file of the given link types, in file order."""
    c = counters if counters is not None else ReaderCounters()
    with path.open("rb") as fh:
        head = fh.read(4)
        if len(head) < 4:
            raise CaptureFormatError(f"{path}: too short to be a capture file")
        if head in PCAP_MAGICS:
            kind = "pcap"
        elif struct.unpack("<I", head)[0] == PCAPNG_SHB:
            kind = "pcapng"
        else:
            raise CaptureFormatError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")
        if fh.seek(0, 2) == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if kind == "pcap":
                yield from _pcap(mm, c, linktypes)
            else:
                yield from _pcapng(mm, c, linktypes)


def _pcap(buf: mmap.mmap, c: ReaderCounters, linktypes: frozenset[int]) -> Iterator[Frame]:
    order, unit = PCAP_MAGICS[bytes(buf[:4])]
    if len(buf) < 24:
        c.truncated += 1
        return
    linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(order + "IIII").unpack_from
    off, size = 24, len(buf)
    wanted = linktype in linktypes
    records = 0  # a pcap has one link type: counted once, when the iteration ends
    try:
        while off < size:
            if off + 16 > size:
                c.truncated += 1
                return
            sec, frac, caplen, wire = rec(buf, off)
            off += 16
            if off + caplen > size or caplen > 0x4000000:
                c.truncated += 1
                return
            records += 1
            if wanted:
                yield _frame(Frame, (sec + frac * unit, wire, buf[off:off + caplen], linktype))
            off += caplen
    finally:
        count_records(c, linktype, records, wanted=wanted)


def count_records(c: ReaderCounters, linktype: int, records: int, *, wanted: bool) -> None:
    """Count ``records`` frames of ``linktype`` read (``wanted``) or skipped."""
    if not records:
        return
    c.linktypes[linktype] = c.linktypes.get(linktype, 0) + records
    if wanted:
        c.frames += records
    else:
        c.unsupported_linktype += records


def _tsresol(buf: mmap.mmap, order: str, start: int, end: int) -> float:
    """The ``if_tsresol`` option of an interface block (default microseconds)."""
    off = start
    while off + 4 <= end:
        code, length = struct.unpack_from(order + "HH", buf, off)
        if code == 0:
            break
        if code == OPT_IF_TSRESOL and length >= 1 and off + 5 <= end:
            value = buf[off + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def _pcapng(buf: mmap.mmap, c: ReaderCounters,  # noqa: PLR0912
            linktypes: frozenset[int]) -> Iterator[Frame]:
    size = len(buf)
    off = 0
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    while off < size:
        if off + 12 > size:
            c.truncated += 1
            return
        btype = struct.unpack_from(order + "I", buf, off)[0]
        if btype == PCAPNG_SHB:
            magic = buf[off + 8:off + 12]
            if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
                order = "<"
            elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
                order = ">"
            else:
                c.truncated += 1
                return
            interfaces = []  # a new section numbers its interfaces afresh
        blen = struct.unpack_from(order + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or off + blen > size:
            c.truncated += 1
            return
        body, end = off + 8, off + blen - 4
        if btype == IDB and end - body >= 8:
            linktype = struct.unpack_from(order + "H", buf, body)[0]
            interfaces.append((linktype, _tsresol(buf, order, body + 8, end)))
        elif btype in (EPB, PB_OBSOLETE) and end - body >= 20:
            if btype == EPB:
                ifid, hi, lo, caplen, wire = struct.unpack_from(order + "IIIII", buf, body)
            else:
                ifid, _drops, hi, lo, caplen, wire = struct.unpack_from(order + "HHIIII", buf,
                                                                        body)
            frame = _ng_frame(buf, c, interfaces, linktypes, ifid=ifid, ticks=(hi << 32) | lo,
                              caplen=caplen, wire=wire, start=body + 20, end=end)
            if frame is not None:
                yield frame
        elif btype == SPB and end - body >= 4 and interfaces:
            wire = struct.unpack_from(order + "I", buf, body)[0]
            caplen = min(wire, end - body - 4)
            frame = _ng_frame(buf, c, interfaces, linktypes, ifid=0, ticks=None, caplen=caplen,
                              wire=wire, start=body + 4, end=end)
            if frame is not None:
                yield frame
        off += blen


def _ng_frame(buf: mmap.mmap, c: ReaderCounters, interfaces: list[tuple[int, float]],
              linktypes: frozenset[int], *, ifid: int, ticks: int | None, caplen: int,
              wire: int, start: int, end: int) -> Frame | None:
    if ifid >= len(interfaces) or start + caplen > end:
        c.truncated += 1
        return None
    linktype, unit = interfaces[ifid]
    wanted = linktype in linktypes
    count_records(c, linktype, 1, wanted=wanted)
    if not wanted:
        return None
    return Frame(ticks * unit if ticks is not None else 0.0, wire, buf[start:start + caplen],
                 linktype)
