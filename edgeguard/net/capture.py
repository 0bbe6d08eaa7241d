"""AF_PACKET capture sockets with the cBPF filter attached in the kernel.

Two receive paths over the same socket setup (``SOCK_RAW``, ``ETH_P_ALL``, promiscuous
through ``PACKET_ADD_MEMBERSHIP``, ``SO_ATTACH_FILTER`` before ``bind`` so no unfiltered
frame is ever queued, optional ``PACKET_FANOUT_HASH`` group):

* :class:`RecvCapture`: ``recvmsg_into`` one frame at a time, with ``PACKET_AUXDATA`` for
  the original length and the VLAN tag the kernel stripped;
* :class:`RingCapture`: a ``TPACKET_V3`` ring mapped into our memory; the kernel fills
  whole blocks and we walk them without a system call per frame.

Both count kernel drops through ``PACKET_STATISTICS`` (which resets on read, so the
counts are accumulated here). ``bench/live_capture.py`` measures which is faster.

The capture worker reads with :meth:`RingCapture.drain_packets` a batch of frames at a
time (:data:`edgeguard.net.worker.PACKET_BATCH`): a ready block is copied out of the
ring in one piece and handed back to the kernel at once, and its frames are then
walked and decoded by compiled code (:mod:`edgeguard.net.ringblock`) into a list the
worker feeds to the detectors. Decoding a batch and then detecting over it keeps each
loop's code and tables in the CPU caches (``replay`` does the same with 256 packets),
and there is no call through a per-frame sink.

Link types: on an Ethernet interface (ARPHRD_ETHER, and loopback's fake Ethernet
header) the socket is ``SOCK_RAW`` and frames are handed on as they are. Any other
interface (tun, WireGuard, PPP: raw IP, no link header) and the ``any`` pseudo-interface
are *cooked*: a ``SOCK_DGRAM`` socket, the filter built with ``cooked=True`` (see
:mod:`edgeguard.net.filter`), and each packet handed on behind a 14-byte Ethernet
header made from its ``sockaddr_ll`` (protocol, and the sender's MAC when it has one),
so decoding and detection are the same for every link.
"""

from __future__ import annotations

import ctypes
import mmap
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeguard.net.bpf import Program
from edgeguard.net.inspect import Inspector
from edgeguard.net.packet import Packet
from edgeguard.net.ringblock import (
    BLOCK_HEADER,
    SLL_OFFSET,
    TP_STATUS_VLAN_VALID,
    Block,
    FrameSink,
    block_length,
    cooked_frame,
)

__all__ = [
    "CaptureStats",
    "FrameSink",
    "RecvCapture",
    "RingCapture",
    "attach_filter",
    "cooked_frame",
    "is_cooked",
    "open_capture_socket",
]

ETH_P_ALL = 0x0003
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
#: The pseudo-interface that captures on every interface (always cooked).
ANY = "any"
SOL_PACKET = 263
SO_ATTACH_FILTER = 26
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
#: Frames a sink-driven :meth:`RingCapture.drain` reads by default (all that are ready).
DRAIN_ALL = 1 << 30

_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_STATUS = struct.Struct("=I")  # tpacket_hdr_v1.block_status
_STATUS_AT = 8  # its offset in the block
_SLL_OFFSET = SLL_OFFSET  # (the ring tests lay frames out with it)


@dataclass(slots=True)
class CaptureStats:
    """Accumulated ``PACKET_STATISTICS``: frames the filter passed, and kernel drops."""

    packets: int = 0
    drops: int = 0
    freezes: int = 0


def _ifindex(ifname: str) -> int:
    return socket.if_nametoindex(ifname)


def is_cooked(ifname: str) -> bool:
    """Whether ``ifname`` is captured cooked (no Ethernet header on its frames)."""
    if ifname == ANY:
        return True
    try:
        kind = int(Path("/sys/class/net", ifname, "type").read_text())
    except (OSError, ValueError):
        return False  # (the bind reports a missing interface)
    return kind not in (ARPHRD_ETHER, ARPHRD_LOOPBACK)


def attach_filter(sock: socket.socket, program: Program) -> None:
    """``SO_ATTACH_FILTER``: the kernel copies and validates the program; on a live
    socket the new filter replaces the old one atomically."""
    code = program.pack()
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_capture_socket(ifname: str, program: Program, *, promiscuous: bool = True,
                        rcvbuf: int = 8 << 20, fanout_group: int | None = None,
                        ring: bool = False, cooked: bool = False) -> socket.socket:
    """A capture socket on ``ifname`` with ``program`` attached (before it sees traffic).

    ``ring`` selects ``TPACKET_V3`` (the ring itself is mapped by :class:`RingCapture`);
    ``cooked`` a ``SOCK_DGRAM`` socket (``program`` must be built cooked too). On
    ``any`` the socket cannot be bound (Python binds by name): it is opened for every
    protocol, and what arrived before the filter was attached is read and discarded."""
    kind = socket.SOCK_DGRAM if cooked else socket.SOCK_RAW
    if ifname == ANY:
        return _open_any(program, rcvbuf, ring)
    sock = socket.socket(socket.AF_PACKET, kind, 0)  # protocol 0: no frames yet
    try:
        attach_filter(sock, program)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if ring:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        else:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        index = _ifindex(ifname)
        if promiscuous:
            mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.bind((ifname, ETH_P_ALL))
        if fanout_group is not None:
            arg = (fanout_group & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG)
                                             << 16)
            sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))
    except BaseException:
        sock.close()
        raise
    return sock


def _open_any(program: Program, rcvbuf: int, ring: bool) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    try:
        attach_filter(sock, program)
        sock.setblocking(False)
        for _ in range(1 << 16):  # frames queued before the filter: never inspected
            try:
                sock.recv(1)
            except BlockingIOError:
                break
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if ring:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        else:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _Base:
    def __init__(self, sock: socket.socket, ring: bool) -> None:
        self.sock = sock
        self.stats = CaptureStats()
        self._ring = ring

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_stats(self) -> CaptureStats:
        """Fold the kernel's counters (reset on every read) into :attr:`stats`."""
        size = 12 if self._ring else 8
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, size)
        packets, drops = struct.unpack_from("=II", raw)
        self.stats.packets += packets
        self.stats.drops += drops
        if self._ring:
            self.stats.freezes += struct.unpack_from("=I", raw, 8)[0]
        return self.stats

    def close(self) -> None:
        self.sock.close()


class RecvCapture(_Base):
    """One ``recvmsg_into`` per frame (non-blocking; :meth:`drain` empties the queue)."""

    def __init__(self, sock: socket.socket, snap: int = 65535, cooked: bool = False) -> None:
        super().__init__(sock, ring=False)
        self.cooked = cooked
        sock.setblocking(False)
        self._buf = bytearray(max(snap, 64))
        self._view = memoryview(self._buf)
        self._anc = socket.CMSG_SPACE(_AUX.size)

    def drain(self, sink: FrameSink, limit: int = 4096) -> int:
        recv = self.sock.recvmsg_into
        bufs = [self._view]
        n = 0
        while n < limit:
            try:
                size, anc, _flags, addr = recv(bufs, self._anc)
            except BlockingIOError:
                break
            wire, vlan = size, None
            for level, kind, data in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUX.size:
                    status, tp_len, _snap, _mac, _net, tci, _tpid = _AUX.unpack_from(data)
                    wire = tp_len
                    if status & TP_STATUS_VLAN_VALID:
                        vlan = tci & 0x0FFF
            if self.cooked:  # addr: (ifname, protocol, pkttype, hatype, hwaddr)
                sink(cooked_frame(addr[1].to_bytes(2, "big"), addr[4], self._view[:size]),
                     time.time(), wire, vlan)
            else:
                sink(bytes(self._view[:size]), time.time(), wire, vlan)
            n += 1
        return n

    def drain_packets(self, inspector: Inspector, out: list[Packet],
                      limit: int = 4096) -> int:
        """Decode up to ``limit`` queued frames into ``out``; returns the frames read."""
        to_packet = inspector.packet

        def sink(data: bytes, ts: float, wire: int, vlan: int | None) -> None:
            pkt = to_packet(data, ts, wire, vlan)
            if pkt is not None:
                out.append(pkt)
        return self.drain(sink, limit)

    @property
    def pending(self) -> bool:
        """Frames already taken from the kernel and not read yet (never, one by one)."""
        return False

    def wait(self, timeout: float) -> bool:
        return bool(select.select([self.sock], [], [], timeout)[0])


class RingCapture(_Base):
    """A ``TPACKET_V3`` receive ring: ``blocks`` blocks of ``block_size`` bytes; a block is
    handed to us when full or after ``retire_ms`` (so a quiet link still delivers)."""

    def __init__(self, sock: socket.socket, block_size: int = 1 << 20, blocks: int = 8,
                 retire_ms: int = 50, cooked: bool = False) -> None:
        super().__init__(sock, ring=True)
        self.cooked = cooked
        self.block_size, self.blocks = block_size, blocks
        frame_size = 2048
        req = struct.pack("=7I", block_size, blocks, frame_size,
                          block_size * blocks // frame_size, retire_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.map: mmap.mmap | None = mmap.mmap(sock.fileno(), block_size * blocks,
                                               mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._next = 0
        self._block: Block | None = None  # taken out of the ring, frames left to read

    def drain(self, sink: FrameSink, limit: int = DRAIN_ALL) -> int:
        """Hand up to ``limit`` frames to ``sink``: those of a block already taken, then
        of the ready blocks (at most one turn of the ring per call)."""
        return self._walk(lambda block, room: block.frames(sink, room), limit)

    def drain_packets(self, inspector: Inspector, out: list[Packet], limit: int) -> int:
        """Decode up to ``limit`` frames into ``out`` (``inspector.packet``: the ones
        decoded); returns the frames read. A block is taken out of the ring (and handed
        back to the kernel) whole; what ``limit`` leaves of it is read by the next call
        (:attr:`pending`)."""
        return self._walk(lambda block, room: block.packets(inspector, out, room), limit)

    @property
    def pending(self) -> bool:
        """Frames of a block already taken out of the ring and not read yet."""
        return self._block is not None

    def _walk(self, read: Callable[[Block, int], int], limit: int) -> int:
        n = 0
        block = self._block
        for _ in range(self.blocks + 1):  # the pending block, then one turn of the ring
            if block is None:
                block = self._take()
                if block is None:
                    break
            n += read(block, limit - n)
            if block.left <= 0:
                block = None
            if n >= limit:
                break
        self._block = block
        return n

    def _take(self) -> Block | None:
        """Copy the next ready block out of the ring (its used length) and hand it back
        to the kernel; None while the kernel still owns it."""
        mm = self.map
        assert mm is not None
        base = self._next * self.block_size
        if not _STATUS.unpack_from(mm, base + _STATUS_AT)[0] & TP_STATUS_USER:
            return None
        length = block_length(mm[base:base + BLOCK_HEADER], self.block_size)
        block = Block(mm[base:base + length], self.cooked)
        _STATUS.pack_into(mm, base + _STATUS_AT, TP_STATUS_KERNEL)
        self._next = (self._next + 1) % self.blocks
        return block

    def wait(self, timeout: float) -> bool:
        mm = self.map
        assert mm is not None
        if self._block is not None or _STATUS.unpack_from(
                mm, self._next * self.block_size + _STATUS_AT)[0] & TP_STATUS_USER:
            return True
        return bool(select.select([self.sock], [], [], timeout)[0])

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        super().close()
