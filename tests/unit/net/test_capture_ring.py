"""The TPACKET_V3 ring walk of the capture worker (edgeguard.net.capture), over a ring
laid out by hand in anonymous memory as the kernel lays it out: frames are copied out of
ready blocks in order with their time, wire length and stripped VLAN tag, each block is
handed back to the kernel once read, a block the kernel still owns ends the walk, and
the walk wraps around the ring. (The live path over a real socket is
tests/linux/net/test_capture_live.py.)"""

from __future__ import annotations

import mmap
import struct

from edgeguard.net.capture import (
    _SLL_OFFSET,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    RingCapture,
)
from edgeguard.net.packet import Packet

BLOCK = 4096
BLOCKS = 3
_HDR = struct.Struct("=IIIIIIHH4xH")


class _Sock:
    def close(self) -> None:  # the ring owns no real socket here
        pass


def _ring(cooked: bool = False) -> RingCapture:
    ring = RingCapture.__new__(RingCapture)
    ring.sock = _Sock()  # type: ignore[assignment]
    ring.cooked = cooked
    ring.block_size, ring.blocks = BLOCK, BLOCKS
    ring.map = mmap.mmap(-1, BLOCK * BLOCKS)
    ring._next = 0
    return ring


def _fill(ring: RingCapture, block: int, frames: list[tuple[bytes, int, int | None]],
          sec: int = 1_700_000_000) -> None:
    """Lay ``frames`` (data, wire length, vlan) into ``block`` and mark it ready."""
    mm = ring.map
    assert mm is not None
    base = block * BLOCK
    off = first = 48
    for n, (data, wire, vlan) in enumerate(frames):
        mac = 80  # past the header and the sockaddr_ll, as the kernel aligns it
        nxt = 0 if n == len(frames) - 1 else (mac + len(data) + 15) // 16 * 16
        status = TP_STATUS_VLAN_VALID if vlan is not None else 0
        _HDR.pack_into(mm, base + off, nxt, sec, n * 1000, len(data), wire, status, mac, mac,
                       vlan or 0)
        struct.pack_into("=H2sIHBB8s", mm, base + off + _SLL_OFFSET, 17, b"\x08\x00", 2, 1, 0,
                         6, b"\x02\x00\x00\x00\x00\x07\x00\x00")
        mm[base + off + mac:base + off + mac + len(data)] = data
        off += nxt
    struct.pack_into("=III", mm, base + 8, TP_STATUS_USER, len(frames), first)


def _collect(ring: RingCapture, limit: int = 1) -> tuple[int, list[tuple[bytes, float, int,
                                                                           int | None]]]:
    seen: list[tuple[bytes, float, int, int | None]] = []

    def to_packet(data: bytes, ts: float, wire: int, vlan: int | None) -> Packet | None:
        seen.append((bytes(data), ts, wire, vlan))
        return Packet(ts=ts, wire_len=wire) if wire != 999 else None

    out: list[Packet] = []
    n = ring.drain_packets(to_packet, out, limit)
    assert len(out) == sum(1 for s in seen if s[2] != 999)
    return n, seen


def _status(ring: RingCapture, block: int) -> int:
    assert ring.map is not None
    return int(struct.unpack_from("=I", ring.map, block * BLOCK + 8)[0])


FRAME = bytes(range(60))


def test_a_ready_block_is_read_in_order_and_handed_back() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60, None), (FRAME[::-1], 1514, 12), (b"x" * 20, 999, None)])
    n, seen = _collect(ring)
    assert n == 3
    assert [s[0] for s in seen] == [FRAME, FRAME[::-1], b"x" * 20]
    assert [s[2] for s in seen] == [60, 1514, 999]
    assert [s[3] for s in seen] == [None, 12, None]
    assert seen[1][1] == 1_700_000_000 + 1e-6
    assert _status(ring, 0) == TP_STATUS_KERNEL
    assert ring._next == 1


def test_a_block_the_kernel_owns_ends_the_walk_and_the_ring_wraps() -> None:
    ring = _ring()
    assert _collect(ring, limit=BLOCKS) == (0, [])  # nothing ready
    _fill(ring, 0, [(FRAME, 60, None)])
    _fill(ring, 1, [(FRAME, 61, None)])
    n, seen = _collect(ring, limit=1)  # one block per call
    assert (n, [s[2] for s in seen]) == (1, [60])
    n, seen = _collect(ring, limit=BLOCKS)
    assert (n, [s[2] for s in seen]) == (1, [61])  # block 2 is the kernel's: stop
    _fill(ring, 2, [(FRAME, 62, None)])
    _fill(ring, 0, [(FRAME, 63, None)])
    n, seen = _collect(ring, limit=BLOCKS)
    assert (n, [s[2] for s in seen]) == (2, [62, 63])  # wrapped around
    assert ring._next == 1


def test_frames_are_copies_a_reused_block_cannot_change() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60, None)])
    _n, seen = _collect(ring)
    _fill(ring, 0, [(b"\xff" * 60, 60, None)])  # the kernel refills the block
    assert seen[0][0] == FRAME


def test_cooked_frames_get_an_ethernet_header_from_the_sockaddr() -> None:
    ring = _ring(cooked=True)
    _fill(ring, 0, [(FRAME[:40], 40, None)])
    _n, seen = _collect(ring)
    data = seen[0][0]
    assert data[:6] == bytes(6)
    assert data[6:12] == b"\x02\x00\x00\x00\x00\x07"
    assert data[12:14] == b"\x08\x00"
    assert data[14:] == FRAME[:40]


def test_drain_hands_every_frame_to_a_sink() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60, None), (FRAME, 70, 5)])
    _fill(ring, 1, [(FRAME, 80, None)])
    got: list[tuple[int, int | None]] = []
    assert ring.drain(lambda _d, _t, wire, vlan: got.append((wire, vlan))) == 3
    assert got == [(60, None), (70, 5), (80, None)]
