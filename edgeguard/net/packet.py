"""The decoded packet the decoders produce and the detectors consume.

One flat, slotted object per packet (no nested layer objects): decoders fill what the
packet has and leave the rest at their defaults. Addresses are kept as text (``str``)
because findings and audit records need text anyway and detectors key tables on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["ARP", "ArpInfo", "IcmpQuote", "Packet", "PacketClass", "TcpFlags"]

#: A packet's class for routing to detectors: :data:`ARP`, or the IP protocol number.
PacketClass = int
#: The class of ARP packets (no IP protocol number is negative).
ARP: PacketClass = -1


class TcpFlags:
    FIN: Final = 0x01
    SYN: Final = 0x02
    RST: Final = 0x04
    PSH: Final = 0x08
    ACK: Final = 0x10
    URG: Final = 0x20
    ECE: Final = 0x40
    CWR: Final = 0x80


@dataclass(slots=True)
class ArpInfo:
    op: int  # 1 request, 2 reply
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


@dataclass(slots=True)
class IcmpQuote:
    """The original datagram quoted inside an ICMP error (e.g. port unreachable)."""

    src_ip: str
    dst_ip: str
    proto: int
    sport: int | None
    dport: int | None


@dataclass(slots=True, init=False)
class Packet:
    ts: float  # capture time, epoch seconds
    wire_len: int  # original frame length
    src_mac: str = ""
    dst_mac: str = ""
    ethertype: int = 0
    vlan: int | None = None
    ip_version: int = 0  # 0 when not IP
    src_ip: str = ""
    dst_ip: str = ""
    ttl: int = 0
    proto: int = 0  # IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    tcp_seq: int = 0
    tcp_ack: int = 0
    tcp_window: int = 0
    icmp_type: int = -1
    icmp_code: int = -1
    icmp_quote: IcmpQuote | None = None
    arp: ArpInfo | None = None
    payload: bytes = b""  # first bytes of the transport payload (what the snap length kept)
    payload_len: int = 0  # full transport payload length from the headers
    ip_id: int = 0  # IPv4 identification (0 for IPv6)
    tcp_hdr_len: int = 0  # TCP header length in bytes (20: no options)

    def __init__(self, ts: float, wire_len: int, src_mac: str = "",  # noqa: PLR0917
                 dst_mac: str = "",
                 ethertype: int = 0, vlan: int | None = None, ip_version: int = 0,
                 src_ip: str = "", dst_ip: str = "", ttl: int = 0, proto: int = 0,
                 sport: int = 0, dport: int = 0, tcp_flags: int = 0, tcp_seq: int = 0,
                 tcp_ack: int = 0, tcp_window: int = 0, icmp_type: int = -1, icmp_code: int = -1,
                 icmp_quote: IcmpQuote | None = None, arp: ArpInfo | None = None,
                 payload: bytes = b"", payload_len: int = 0, ip_id: int = 0,
                 tcp_hdr_len: int = 0) -> None:
        # written out (the dataclass' generated __init__ is interpreted Python even
        # where this module is compiled; this one is a C function: one per packet)
        self.ts = ts
        self.wire_len = wire_len
        self.src_mac = src_mac
        self.dst_mac = dst_mac
        self.ethertype = ethertype
        self.vlan = vlan
        self.ip_version = ip_version
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.ttl = ttl
        self.proto = proto
        self.sport = sport
        self.dport = dport
        self.tcp_flags = tcp_flags
        self.tcp_seq = tcp_seq
        self.tcp_ack = tcp_ack
        self.tcp_window = tcp_window
        self.icmp_type = icmp_type
        self.icmp_code = icmp_code
        self.icmp_quote = icmp_quote
        self.arp = arp
        self.payload = payload
        self.payload_len = payload_len
        self.ip_id = ip_id
        self.tcp_hdr_len = tcp_hdr_len
