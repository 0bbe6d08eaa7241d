"""The frames of one ``TPACKET_V3`` ring block, read in compiled code.

The capture worker copies a ready block out of the ring in one piece (one ``memcpy`` of
the block's used length; the kernel gets the block back at once) and then walks its
frames here: typed integer reads over ``bytes`` at the kernel's offsets, no ``struct``
tuple, no ``mmap`` slice and no Python-level call per frame other than the decoder's.
setup.py compiles this module with mypyc; run as Python (``EDGEGUARD_PURE=1``) it gives
the same frames, only slower.

Layouts (``linux/if_packet.h``), offsets in bytes:

* the block: ``struct tpacket_block_desc`` = version @0, offset_to_priv @4, then
  ``tpacket_hdr_v1``: block_status @8, num_pkts @12, offset_to_first_pkt @16,
  blk_len @20 (bytes used, this header included), ...;
* a frame: ``struct tpacket3_hdr`` = tp_next_offset @0, tp_sec @4, tp_nsec @8,
  tp_snaplen @12, tp_len @16, tp_status @20, tp_mac (u16) @24, tp_net (u16) @26,
  hv1.tp_rxhash @28, hv1.tp_vlan_tci @32; the ``sockaddr_ll`` after it at
  TPACKET_ALIGN(48) = 48: family @48, protocol (network order) @50, ifindex @52,
  hatype @56, pkttype @58, halen @59, addr[8] @60.

Every integer is in host order (little-endian on the machines we build for; the
``struct`` reads this replaces used ``=``, i.e. native order, too).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final

from edgeguard.net.inspect import Inspector
from edgeguard.net.packet import Packet

__all__ = ["BLOCK_HEADER", "FRAME_HEADER", "SLL_OFFSET", "TP_STATUS_VLAN_VALID", "Block",
           "FrameSink", "block_length", "cooked_frame"]

#: ``tpacket_block_desc`` up to and including blk_len.
BLOCK_HEADER: Final = 24
#: ``tpacket3_hdr`` up to and including hv1.tp_vlan_tci (what a frame's header must hold).
FRAME_HEADER: Final = 36
#: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): the ``sockaddr_ll`` after the header.
SLL_OFFSET: Final = 48
_SLL_SIZE: Final = 20
TP_STATUS_VLAN_VALID: Final = 1 << 4
_VLAN_ID: Final = 0x0FFF
_NO_MAC: Final = bytes(6)

if sys.byteorder != "little":  # pragma: no cover - every platform we ship is little-endian
    raise ImportError("edgeguard.net.ringblock reads the ring in little-endian order")

#: (data, ts, wire_len, vlan or None) for each frame
FrameSink = Callable[[bytes, float, int, "int | None"], None]


def _u16(data: bytes, off: int) -> int:
    return data[off] | data[off + 1] << 8


def _u32(data: bytes, off: int) -> int:
    return data[off] | data[off + 1] << 8 | data[off + 2] << 16 | data[off + 3] << 24


def block_length(header: bytes, block_size: int) -> int:
    """The bytes to copy out of a block whose first :data:`BLOCK_HEADER` bytes are
    ``header``: its blk_len, or the whole block when that is not plausible."""
    used = _u32(header, 20)
    return used if BLOCK_HEADER <= used <= block_size else block_size


def cooked_frame(protocol: bytes, mac: bytes, packet: bytes | memoryview) -> bytes:
    """A cooked packet behind an Ethernet header: ``protocol`` is the 2-byte ethertype
    (network order), ``mac`` the sender's address when it has 6 bytes."""
    return _NO_MAC + (mac if len(mac) == 6 else _NO_MAC) + protocol + packet


class Block:
    """A copy of one ring block and a cursor over its frames.

    :meth:`next` returns each frame's bytes (cooked frames behind an Ethernet header
    made from their ``sockaddr_ll``) and leaves its capture time, wire length and
    stripped VLAN tag in :attr:`ts`, :attr:`wire` and :attr:`vlan`. The walk ends after
    num_pkts frames, after a frame whose tp_next_offset is 0, or before a frame whose
    header would reach past the copy (the kernel writes neither; a damaged block must
    not make us read garbage or the same frame again)."""

    def __init__(self, data: bytes, cooked: bool) -> None:
        self.data = data
        self.cooked = cooked
        ok = len(data) >= BLOCK_HEADER
        self.left = _u32(data, 12) if ok else 0  # frames not read yet
        self.off = _u32(data, 16) if ok else 0  # the next frame's header
        self.ts = 0.0
        self.wire = 0
        self.vlan: int | None = None

    def next(self) -> bytes | None:
        """The next frame, or None when the block has no more."""
        if self.left <= 0:
            return None
        data = self.data
        off = self.off
        header_end = off + (SLL_OFFSET + _SLL_SIZE if self.cooked else FRAME_HEADER)
        if off < 0 or header_end > len(data):
            self.left = 0
            return None
        step = _u32(data, off)
        self.left = self.left - 1 if step else 0  # (a zero step: the last frame)
        self.off = off + step
        self.ts = _u32(data, off + 4) + _u32(data, off + 8) * 1e-9
        self.wire = _u32(data, off + 16)
        self.vlan = (_u16(data, off + 32) & _VLAN_ID
                     if _u32(data, off + 20) & TP_STATUS_VLAN_VALID else None)
        start = off + _u16(data, off + 24)
        frame = data[start:start + _u32(data, off + 12)]
        if self.cooked:
            sll = off + SLL_OFFSET
            halen = data[sll + 11]
            frame = cooked_frame(data[sll + 2:sll + 4], data[sll + 12:sll + 12 + halen], frame)
        return frame

    def packets(self, inspector: Inspector, out: list[Packet], limit: int) -> int:
        """Decode up to ``limit`` more frames into ``out`` (``inspector.packet``: what
        the filter kept and could be decoded); returns the frames read."""
        n = 0
        while n < limit:
            frame = self.next()
            if frame is None:
                break
            n += 1
            pkt = inspector.packet(frame, self.ts, self.wire, self.vlan)
            if pkt is not None:
                out.append(pkt)
        return n

    def frames(self, sink: FrameSink, limit: int) -> int:
        """Hand up to ``limit`` more frames to ``sink``; returns the frames read."""
        n = 0
        while n < limit:
            frame = self.next()
            if frame is None:
                break
            n += 1
            sink(frame, self.ts, self.wire, self.vlan)
        return n
