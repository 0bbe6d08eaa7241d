"""A flow's first bytes joined by TCP sequence number: a handshake split across segments.

A BitTorrent client may send its 68-byte handshake (``\\x13BitTorrent protocol``, 8
reserved bytes, the 20-byte info-hash, the 20-byte peer id) in pieces cut anywhere, or
a byte at a time, to slip past per-packet signatures. The capture filter passes every
piece that starts within the protocol string (a 4-byte window of it, or a segment of
1-3 bytes); this module puts the pieces back in order and hands the joined bytes to the
signature once they hold ``handshake_min_bytes`` of the protocol string.

One :class:`Assembly` per flow direction, in a :class:`BoundedTable` of
``max_handshake_assemblies`` (least recently fed evicted first, unanchored ones
preferred), forgotten ``handshake_timeout`` after its last segment. Each keeps at most
:data:`HANDSHAKE_LEN` bytes. An assembly starts only for a segment that may be part of a
handshake: where the side's initial sequence number is known (its SYN was seen), one
that agrees with the protocol string at its offset, or that lies in the first 68 bytes
before the side's first payload arrived (out of order); without it, one that starts with
a piece of the protocol string (which gives the first byte's sequence number), or a
segment of 1-3 bytes (kept aside until such a piece anchors it). Overlapping bytes: the
first copy wins, as the receiving stack keeps in-order data it already has.

A cut after 17-19 bytes leaves a continuation the filter cannot pass (it holds no whole
4-byte window of the string), so with the default of 17 the handshake is reported from
the first 17-19 bytes, without the info-hash; so is a handshake sent a byte at a time
(reported at its 17th byte, before the info-hash arrives: an early finding is worth
more to enforcement than the hash).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeguard.net.config import BitTorrentThresholds
from edgeguard.net.detect.bt_signatures import HANDSHAKE
from edgeguard.net.detect.common import BoundedTable

__all__ = ["HANDSHAKE_LEN", "TINY", "Assembly", "HandshakeAssembler", "SideKey"]

#: A whole handshake: the most bytes an assembly keeps.
HANDSHAKE_LEN = 68
#: Segments this short pass the capture filter whatever they hold (filter.TINY_TCP).
TINY = 3
#: (source ip, source port, destination ip, destination port): one flow direction.
SideKey = tuple[str, int, str, int]

_SEQ = 0xFFFFFFFF
_PROTO = len(HANDSHAKE)  # 20
#: Each 4-byte window of the protocol string -> its offset (the windows are distinct).
_WINDOWS = {HANDSHAKE[i:i + 4]: i for i in range(_PROTO - 3)}


def _agrees(offset: int, data: bytes) -> bool:
    """Whether ``data`` placed at ``offset`` matches the protocol string where they
    overlap (bytes past the string are the reserved bytes, info-hash and peer id)."""
    if offset >= _PROTO:
        return True
    return HANDSHAKE[offset:].startswith(data[:_PROTO - offset])


def anchor(seq: int, payload: bytes) -> int | None:
    """The sequence number of the handshake's first byte, if ``payload`` is recognisably
    a piece of the protocol string; else None (a tiny piece cannot tell where it is)."""
    if len(payload) >= 4:
        offset = _WINDOWS.get(payload[:4])
        if offset is not None and _agrees(offset, payload):
            return (seq - offset) & _SEQ
        return None
    if payload[:1] == HANDSHAKE[:1] and _agrees(0, payload):
        return seq
    return None


@dataclass(slots=True)
class Assembly:
    """One flow direction's first bytes, placed by offset from the first payload byte."""

    updated: float
    base: int = -1  # sequence number of the first payload byte; -1 until known
    data: bytearray = field(default_factory=lambda: bytearray(HANDSHAKE_LEN))
    have: bytearray = field(default_factory=lambda: bytearray(HANDSHAKE_LEN))
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # before the anchor

    def place(self, seq: int, payload: bytes) -> bool:
        """Write the part of a segment within the first bytes that is not there yet;
        False when that contradicts the protocol string (the flow is no handshake)."""
        offset = (seq - self.base) & _SEQ
        skip = 0
        if offset >= HANDSHAKE_LEN:  # starts before the base (a retransmit) or far after
            skip = (self.base - seq) & _SEQ
            if skip >= len(payload):
                return True
            offset, payload = 0, payload[skip:]
        data, have = self.data, self.have
        for i, byte in enumerate(payload[:HANDSHAKE_LEN - offset], offset):
            if have[i]:  # the first copy wins
                continue
            if i < _PROTO and byte != HANDSHAKE[i]:
                return False
            data[i] = byte
            have[i] = 1
        return True

    def joined(self) -> bytes:
        """The contiguous bytes from the first payload byte on."""
        end = self.have.find(0)
        return bytes(self.data[:HANDSHAKE_LEN if end < 0 else end])


class HandshakeAssembler:
    """Feed it a flow direction's payload segments; it returns the joined first bytes
    once, when they hold ``handshake_min_bytes`` of the protocol string."""

    def __init__(self, cfg: BitTorrentThresholds) -> None:
        self.min_bytes = min(cfg.handshake_min_bytes, _PROTO)
        self.timeout = float(cfg.handshake_timeout)
        self.table: BoundedTable[SideKey, Assembly] = BoundedTable(
            cfg.max_handshake_assemblies, prefer_evict=lambda asm: asm.base < 0)
        self.n_joined = 0
        self.n_expired = 0

    def feed(self, key: SideKey, seq: int, payload: bytes, ts: float, *,
             isn: int | None, opened: bool) -> bytes | None:
        """``isn``: the side's initial sequence number (from its SYN) if known;
        ``opened``: whether the side's first payload was already seen."""
        asm = self.table.touch(key)
        if asm is None:
            if not payload or not self._may_start(seq, payload, isn, opened):
                return None
            asm = Assembly(ts, -1 if isn is None else (isn + 1) & _SEQ)
            self.table.put(key, asm)
        asm.updated = ts
        if asm.base < 0:
            base = anchor(seq, payload)
            if base is None:
                if len(asm.pending) < HANDSHAKE_LEN:
                    asm.pending.append((seq, payload[:HANDSHAKE_LEN]))
                return None
            asm.base = base
            pieces, asm.pending = asm.pending, []
            if not all(asm.place(s, p) for s, p in pieces):
                self.table.pop(key)
                return None
        if not asm.place(seq, payload):
            self.table.pop(key)
            return None
        joined = asm.joined()
        if len(joined) < self.min_bytes:
            return None
        self.table.pop(key)
        self.n_joined += 1
        return joined

    def expire(self, now: float) -> None:
        """Forget assemblies fed nothing for ``handshake_timeout``."""
        table = self.table
        while (item := table.oldest()) is not None and item[1].updated + self.timeout <= now:
            table.pop(item[0])
            self.n_expired += 1

    def counters(self) -> Mapping[str, int]:
        return {
            "handshake_assemblies": len(self.table),
            "handshake_assemblies_evicted": self.table.evicted,
            "handshake_assemblies_expired": self.n_expired,
            "handshakes_joined": self.n_joined,
        }

    @staticmethod
    def _may_start(seq: int, payload: bytes, isn: int | None, opened: bool) -> bool:
        if isn is None:
            return len(payload) <= TINY or anchor(seq, payload) is not None
        offset = (seq - isn - 1) & _SEQ
        if offset >= HANDSHAKE_LEN:
            return False
        if offset and opened:  # the first payload came and was no handshake start
            return False
        return _agrees(offset, payload)
