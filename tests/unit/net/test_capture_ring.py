"""The TPACKET_V3 ring walk of the capture worker (edgeguard.net.capture and the compiled
edgeguard.net.ringblock), over a ring laid out by hand in anonymous memory as the kernel
lays it out: frames are copied out of ready blocks in order with their time, wire length
and stripped VLAN tag, each block is handed back to the kernel as soon as it is taken
(its frames read from the copy, a batch at a time), a block the kernel still owns ends
the walk, the walk wraps around the ring, and a damaged block header cannot make it
read past the copy. (The live path over a real socket is
tests/linux/net/test_capture_live.py.)"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Mapping

from edgeguard.events import Finding
from edgeguard.net.capture import (
    _SLL_OFFSET,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    RingCapture,
)
from edgeguard.net.inspect import Inspector
from edgeguard.net.packet import Packet
from edgeguard.net.ringblock import Block

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
    ring._block = None
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
    used = off + mac + len(frames[-1][0]) if frames else first  # blk_len, as the kernel
    struct.pack_into("=IIII", mm, base + 8, TP_STATUS_USER, len(frames), first, used)


Seen = list[tuple[bytes, float, int, int | None]]


def _collect(ring: RingCapture, limit: int = 1 << 30) -> tuple[int, Seen]:
    seen: Seen = []
    n = ring.drain(lambda data, ts, wire, vlan: seen.append((data, ts, wire, vlan)), limit)
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
    assert _collect(ring) == (0, [])  # nothing ready
    _fill(ring, 0, [(FRAME, 60, None)])
    _fill(ring, 1, [(FRAME, 61, None)])
    n, seen = _collect(ring, limit=1)  # one frame per call
    assert (n, [s[2] for s in seen]) == (1, [60])
    n, seen = _collect(ring)
    assert (n, [s[2] for s in seen]) == (1, [61])  # block 2 is the kernel's: stop
    _fill(ring, 2, [(FRAME, 62, None)])
    _fill(ring, 0, [(FRAME, 63, None)])
    n, seen = _collect(ring)
    assert (n, [s[2] for s in seen]) == (2, [62, 63])  # wrapped around
    assert ring._next == 1


def test_a_taken_block_goes_back_at_once_and_its_frames_are_read_in_batches() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60 + i, None) for i in range(5)])
    _fill(ring, 1, [(FRAME, 70, None)])
    n, seen = _collect(ring, limit=2)
    assert (n, [s[2] for s in seen]) == (2, [60, 61])
    assert _status(ring, 0) == TP_STATUS_KERNEL  # the kernel may refill it already
    assert ring.pending
    assert ring.wait(0.0)  # the worker must not sleep on frames it holds
    _fill(ring, 0, [(b"\xff" * 60, 99, None)])  # ... and does: the copy is unchanged
    n, seen = _collect(ring, limit=4)
    assert (n, [s[2] for s in seen]) == (4, [62, 63, 64, 70])  # on into the next block
    assert [s[0] for s in seen[:3]] == [FRAME] * 3
    assert not ring.pending
    _fill(ring, 2, [(FRAME, 80, None)])
    n, seen = _collect(ring)
    assert (n, [s[2] for s in seen]) == (2, [80, 99])  # the refilled block, after a turn


class _Recorder:
    """A detector chain that finds nothing (the Inspector's counters ask for one)."""

    def feed(self, pkt: Packet) -> list[Finding]:
        return []

    def tick(self, now: float | None = None) -> list[Finding]:
        return []

    def finish(self) -> list[Finding]:
        return []

    def counters(self) -> Mapping[str, int]:
        return {}

    def forget(self, addresses: Iterable[str]) -> None:
        pass


ETH_UDP = bytes.fromhex(  # 10.0.0.7:40000 -> 10.0.0.5:53, 4 payload bytes
    "020000000005" "020000000007" "0800"
    "4500002000010000401100000a0000070a000005"
    "9c400035000c0000" "61626364")


def test_frames_are_decoded_in_batches_with_the_kernels_time_length_and_vlan() -> None:
    ring = _ring()
    _fill(ring, 0, [(ETH_UDP, 60, None), (b"\x00" * 10, 10, None), (ETH_UDP, 1514, 7)])
    inspector = Inspector(_Recorder())
    out: list[Packet] = []
    assert ring.drain_packets(inspector, out, 2) == 2  # the undecodable frame is read
    assert ring.drain_packets(inspector, out, 256) == 1
    assert [(p.src_ip, p.dport, p.payload, p.wire_len, p.vlan) for p in out] == [
        ("10.0.0.7", 53, b"abcd", 60, None), ("10.0.0.7", 53, b"abcd", 1514, 7)]
    assert [p.ts for p in out] == [1_700_000_000, 1_700_000_000 + 2e-6]
    assert inspector.counters()["frames"] == 3
    assert inspector.counters()["malformed"] + inspector.counters()["not_ip"] == 1


def test_a_damaged_block_header_ends_the_walk_inside_the_copy() -> None:
    frame = struct.pack("=IIIIIIHH", 0, 1, 0, 4, 4, 0, 40, 40) + bytes(12) + b"abcd"
    header = struct.pack("=IIIIII", 0, 0, TP_STATUS_USER, 3, 24, 24 + len(frame))
    seen: Seen = []
    block = Block(header + frame, cooked=False)
    assert block.frames(lambda d, t, w, v: seen.append((d, t, w, v)), 10) == 1
    assert seen == [(b"abcd", 1.0, 4, None)]  # num_pkts says 3; next_offset 0: one frame
    for bad_first in (1 << 31, 10**6):
        header = struct.pack("=IIIIII", 0, 0, TP_STATUS_USER, 3, bad_first, 24)
        assert Block(header + frame, cooked=False).next() is None
    assert Block(b"short", cooked=False).next() is None


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


def test_a_block_without_its_length_is_copied_whole() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60, None)])
    assert ring.map is not None
    struct.pack_into("=I", ring.map, 20, 0)  # blk_len not set: copy all of the block
    assert _collect(ring)[1][0][0] == FRAME


def test_drain_hands_every_frame_to_a_sink() -> None:
    ring = _ring()
    _fill(ring, 0, [(FRAME, 60, None), (FRAME, 70, 5)])
    _fill(ring, 1, [(FRAME, 80, None)])
    got: list[tuple[int, int | None]] = []
    assert ring.drain(lambda _d, _t, wire, vlan: got.append((wire, vlan))) == 3
    assert got == [(60, None), (70, 5), (80, None)]
