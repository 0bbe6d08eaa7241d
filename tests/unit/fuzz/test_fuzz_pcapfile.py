"""Fuzz the pcap/pcapng reader with mutated headers, timestamps included: a file is
frames, counted damage or :class:`CaptureFormatError`; every frame's time can be
written as ``@timestamp``; bounded time and memory per input (issue 16 §4)."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import struct
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edgeguard.ecs import iso_timestamp
from edgeguard.net.pcapfile import CaptureFormatError, ReaderCounters, read_capture
from tests.unit.fuzz.fuzz_support import Budget, campaign, fuzz_settings

BUDGET = Budget()
FRAME = bytes(range(60))
#: Every link type the reader may be asked for (Ethernet; 802.11 bare and radiotap).
LINKTYPES = frozenset({1, 105, 127})
_DIR = tempfile.mkdtemp(prefix="egfuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
atexit.register(shutil.rmtree, _DIR, True)


def _pcap(order: str, nano: bool, frames: int) -> tuple[bytes, list[tuple[int, int]]]:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    fields = [(16, 4), (20, 4)]  # snaplen, linktype
    for i in range(frames):
        fields += [(len(out), 4), (len(out) + 4, 4), (len(out) + 8, 4), (len(out) + 12, 4)]
        out += struct.pack(order + "IIII", 1_700_000_000 + i, 0, len(FRAME), len(FRAME))
        out += FRAME
    return out, fields


def _block(order: str, kind: int, body: bytes) -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    return struct.pack(order + "II", kind, 12 + len(body)) + body + \
        struct.pack(order + "I", 12 + len(body))


def _pcapng(order: str, tsresol: int, frames: int) -> tuple[bytes, list[tuple[int, int]]]:
    out = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    fields = [(4, 4)]
    opts = struct.pack(order + "HHB3x", 9, 1, tsresol) + struct.pack(order + "HH", 0, 0)
    fields += [(len(out) + 4, 4), (len(out) + 8, 2), (len(out) + 16 + 4, 2),
               (len(out) + 16 + 4 + 4, 1)]  # length, linktype, option length, tsresol
    out += _block(order, 1, struct.pack(order + "HHI", 1, 0, 65535) + opts)
    for i in range(frames):
        ticks = (1_700_000_000 + i) * 1_000_000
        base = len(out)
        fields += [(base + 4, 4), (base + 8, 4), (base + 12, 4), (base + 16, 4),
                   (base + 20, 4), (base + 24, 4)]  # len, ifid, ts hi, ts lo, caplen, wire
        kind = 6 if i % 3 else (3 if i % 2 else 2)
        if kind == 6:
            body = struct.pack(order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                               len(FRAME), len(FRAME))
        elif kind == 2:
            body = struct.pack(order + "HHIIII", 0, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                               len(FRAME), len(FRAME))
        else:
            body = struct.pack(order + "I", len(FRAME))
        out += _block(order, kind, body + FRAME)
    return out, fields


EXTREMES = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 12, 16, 24]


def capture(rnd: random.Random) -> bytes:
    """A valid pcap (both orders, micro/nano) or pcapng (EPB, SPB, obsolete PB, any
    if_tsresol), then header fields (lengths, link types, timestamps, tsresol) set to
    extreme or random values, a few bytes flipped, maybe cut short."""
    order = rnd.choice("<>")
    frames = rnd.randrange(5)
    if rnd.random() < 0.5:
        data, fields = _pcap(order, rnd.random() < 0.5, frames)
    else:
        data, fields = _pcapng(order, rnd.randrange(256), frames)
    buf = bytearray(data)
    for _ in range(rnd.randrange(7)):
        offset, width = rnd.choice(fields)
        top = 2 ** (8 * width) - 1
        value = (rnd.choice(EXTREMES) if rnd.random() < 0.5 else rnd.randrange(top + 1)) & top
        if offset + width <= len(buf):
            struct.pack_into(order + {1: "B", 2: "H", 4: "I"}[width], buf, offset, value)
    for _ in range(rnd.randrange(4)):
        if buf:
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
    if rnd.random() < 0.3:
        buf = buf[:rnd.randrange(len(buf) + 1)]
    return bytes(buf)


def read_all(data: bytes) -> None:
    path = Path(_DIR) / f"in-{os.getpid()}.cap"
    path.write_bytes(data)
    counters = ReaderCounters()
    frames = 0
    try:
        for frame in read_capture(path, counters, LINKTYPES):
            frames += 1
            assert len(frame.data) <= len(data)
            iso_timestamp(frame.ts)  # far-future or NaN times are clamped, not raised
    except CaptureFormatError:
        return
    assert counters.frames + counters.unsupported_linktype >= frames


@fuzz_settings()
@given(st.randoms(use_true_random=False))
def test_reader_survives_every_header_hypothesis(rnd: random.Random) -> None:
    Budget().run(read_all, capture(rnd))


def test_reader_survives_every_header_campaign() -> None:
    budget = campaign("pcap/pcapng reader", capture, read_all)
    assert budget.inputs > 0
