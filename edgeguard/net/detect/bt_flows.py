"""Per-flow state the BitTorrent detector needs: TCP openings and uTP pairing.

TCP: which side opened the flow, each side's initial sequence number (where a split
handshake starts, ``bt_handshake``), each side's first payload (size, entropy, whether
it is a known plaintext protocol), and whether a plaintext handshake followed (MSE with
a plaintext payload is not "encrypted").

uTP: a flow is confirmed as uTP by a SYN answered with a STATE whose ack_nr is the
SYN's seq_nr (BEP 29), by a BitTorrent handshake inside a DATA packet, or by both
directions using connection ids that differ by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TcpFlow", "UtpFlow", "flow_key"]

FlowKey = tuple[str, int, str, int]


def flow_key(src: str, sport: int, dst: str, dport: int) -> FlowKey:
    """The same key from both ends: the lower (address, port) first."""
    if src < dst or (src == dst and sport <= dport):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


class Opening:
    """One side's first payload.

    (Per-packet records are plain classes, not dataclasses: compiled, a dataclass's
    generated ``__init__`` stays interpreted and costs more than the rest of a packet.)
    """

    __slots__ = ("mac", "opaque", "sample", "size", "ts")

    def __init__(self, ts: float, size: int, opaque: bool, mac: str = "",
                 sample: str = "") -> None:
        self.ts = ts
        self.size = size
        self.opaque = opaque  # high entropy, no known protocol, size in the MSE/PE range
        self.mac = mac  # the sender's MAC (for the finding's source)
        self.sample = sample  # the opening packet's summary


class TcpFlow:
    """Small until it carries payload: a SYN flood creates many of these."""

    __slots__ = ("announced", "initiator", "isn_initiator", "isn_responder", "listen_port",
                 "opened", "openings", "plaintext")

    def __init__(self, initiator: str, listen_port: int, opened: float,
                 isn_initiator: int = -1) -> None:
        self.initiator = initiator
        self.listen_port = listen_port
        self.opened = opened
        # sequence numbers of the SYN and the SYN-ACK: a side's first payload byte is
        # ISN + 1
        self.isn_initiator = isn_initiator
        self.isn_responder = -1
        self.openings: dict[str, Opening] | None = None  # side ip -> its first payload
        self.plaintext = False  # a side sent a plaintext handshake
        self.announced = ""  # the side that sent a tracker request on this flow

    def is_first_payload(self, side: str, seq: int) -> bool:
        """Whether a segment from ``side`` starting at ``seq`` is that side's first
        payload. The capture filter also passes mid-flow segments (it has no state);
        without a known ISN the segment is taken as first."""
        isn = self.isn(side)
        return isn is None or seq == (isn + 1) & 0xFFFFFFFF

    def isn(self, side: str) -> int | None:
        """The initial sequence number of ``side`` (its SYN's), if seen."""
        isn = self.isn_initiator if side == self.initiator else self.isn_responder
        return None if isn < 0 else isn

    def opening(self, side: str) -> Opening | None:
        return None if self.openings is None else self.openings.get(side)

    def set_opening(self, side: str, opening: Opening) -> None:
        if self.openings is None:
            self.openings = {}
        self.openings[side] = opening


@dataclass(slots=True)
class UtpFlow:
    syn: tuple[str, int, int] | None = None  # (initiator ip, connection id, seq_nr)
    ids: dict[str, set[int]] = field(default_factory=dict)  # side ip -> connection ids
    confirmed: bool = False
    packets: int = 0

    def note(self, side: str, conn_id: int) -> None:
        ids = self.ids.setdefault(side, set())
        if len(ids) < 4:
            ids.add(conn_id)

    def paired(self) -> bool:
        """Both directions seen, with connection ids one apart (send id = recv id + 1)."""
        if len(self.ids) != 2:
            return False
        a, b = self.ids.values()
        return any(abs(x - y) == 1 for x in a for y in b)
