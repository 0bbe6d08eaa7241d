"""Frame decoders: Ethernet (+802.1Q), ARP, IPv4, IPv6 (+extension headers), TCP, UDP,
ICMP/ICMPv6 (+ the datagram quoted in errors), with ``struct`` at fixed offsets.

:func:`decode` turns one frame into a flat :class:`~edgeguard.net.packet.Packet` or
returns None and counts why: a malformed or truncated frame is counted and skipped, it
never raises (a hypothesis test feeds it random bytes). Only the bytes the filter kept
are present (snap length), so the transport payload is cut there, while
``payload_len`` comes from the headers.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from edgeguard.net.packet import ArpInfo, IcmpQuote, Packet

__all__ = ["DecodeCounters", "decode", "mac_text"]

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8)
IPV6_EXT_HEADERS = frozenset((0, 43, 60, 51, 135, 139, 140))  # + AH, mobility, HIP, shim6
IPV6_FRAGMENT = 44
IPV6_NO_NEXT = 59
MAX_EXT_HEADERS = 8
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
ICMP_ERRORS_V4 = (3, 4, 5, 11, 12)  # unreachable, quench, redirect, time exceeded, param
ICMP_ERRORS_V6 = (1, 2, 3, 4)

_H = struct.Struct(">H").unpack_from
_HH = struct.Struct(">HH").unpack_from
_TCP = struct.Struct(">HHIIBBH").unpack_from
_IPV4 = struct.Struct(">BBHHHBBH4s4s").unpack_from
_IPV6 = struct.Struct(">IHBB16s16s").unpack_from
_ARP = struct.Struct(">HHBBH6s4s6s4s").unpack_from
_ntop6 = socket.inet_ntop
_AF6 = socket.AF_INET6


def _ntoa(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def mac_text(raw: bytes) -> str:
    return raw.hex(":")


@dataclass(slots=True)
class DecodeCounters:
    decoded: int = 0
    not_ip: int = 0  # ethertypes we do not decode (LLDP, STP, ...)
    malformed: int = 0  # truncated frames, impossible lengths, bad versions
    fragments: int = 0  # later IP fragments (no transport header to read)


def decode(frame: bytes, ts: float, wire_len: int, c: DecodeCounters) -> Packet | None:
    """One Ethernet frame -> Packet, or None (and a counter) when it cannot be read."""
    n = len(frame)
    if n < 14:
        c.malformed += 1
        return None
    ethertype = _H(frame, 12)[0]
    off = 14
    vlan: int | None = None
    if ethertype in VLAN_TPIDS:
        if n < 18:
            c.malformed += 1
            return None
        vlan = _H(frame, 14)[0] & 0x0FFF
        ethertype = _H(frame, 16)[0]
        off = 18
    pkt = Packet(ts=ts, wire_len=wire_len, src_mac=frame[6:12].hex(":"),
                 dst_mac=frame[0:6].hex(":"), ethertype=ethertype, vlan=vlan)
    if ethertype == ETH_IPV4:
        ok = _ipv4(frame, off, pkt, c)
    elif ethertype == ETH_IPV6:
        ok = _ipv6(frame, off, pkt, c)
    elif ethertype == ETH_ARP:
        ok = _arp(frame, off, pkt, c)
    else:
        c.not_ip += 1
        return None
    if not ok:
        return None
    c.decoded += 1
    return pkt


def _arp(frame: bytes, off: int, pkt: Packet, c: DecodeCounters) -> bool:
    if len(frame) < off + 28:
        c.malformed += 1
        return False
    htype, ptype, hlen, plen, oper, sha, spa, tha, tpa = _ARP(frame, off)
    if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
        c.malformed += 1
        return False
    pkt.arp = ArpInfo(op=oper, sender_mac=sha.hex(":"), sender_ip=_ntoa(spa),
                      target_mac=tha.hex(":"), target_ip=_ntoa(tpa))
    return True


def _ipv4(frame: bytes, off: int, pkt: Packet, c: DecodeCounters) -> bool:
    n = len(frame)
    if n < off + 20:
        c.malformed += 1
        return False
    vihl, _tos, total, _id, frag, ttl, proto, _sum, src, dst = _IPV4(frame, off)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or n < off + ihl:
        c.malformed += 1
        return False
    pkt.ip_version = 4
    pkt.src_ip = _ntoa(src)
    pkt.dst_ip = _ntoa(dst)
    pkt.ttl = ttl
    pkt.proto = proto
    if frag & 0x1FFF:
        c.fragments += 1
        return False
    end = min(n, off + total)
    return _transport(frame, off + ihl, end, total - ihl, pkt=pkt, c=c)


def _ipv6(frame: bytes, off: int, pkt: Packet, c: DecodeCounters) -> bool:  # noqa: PLR0911
    n = len(frame)
    if n < off + 40:
        c.malformed += 1
        return False
    vtc, plen, nh, hlim, src, dst = _IPV6(frame, off)
    if vtc >> 28 != 6:
        c.malformed += 1
        return False
    pkt.ip_version = 6
    pkt.src_ip = _ntop6(_AF6, src)
    pkt.dst_ip = _ntop6(_AF6, dst)
    pkt.ttl = hlim
    pos = off + 40
    remaining = plen
    for _ in range(MAX_EXT_HEADERS):
        if nh in IPV6_EXT_HEADERS:
            if n < pos + 2:
                c.malformed += 1
                return False
            size = (frame[pos + 1] + 2) * 4 if nh == 51 else (frame[pos + 1] + 1) * 8
        elif nh == IPV6_FRAGMENT:
            if n < pos + 8:
                c.malformed += 1
                return False
            if _H(frame, pos + 2)[0] & 0xFFF8:
                pkt.proto = frame[pos]
                c.fragments += 1
                return False
            size = 8
        else:
            break
        nh = frame[pos]
        pos += size
        remaining -= size
        if remaining < 0:
            c.malformed += 1
            return False
    else:
        c.malformed += 1  # a chain longer than any real stack sends
        return False
    pkt.proto = nh
    if nh == IPV6_NO_NEXT:
        return True
    return _transport(frame, pos, min(n, pos + remaining), remaining, pkt=pkt, c=c)


def _transport(frame: bytes, off: int, end: int, length: int, *,  # noqa: PLR0911
               pkt: Packet, c: DecodeCounters) -> bool:
    """``end`` = last captured byte of this datagram; ``length`` = its size per headers."""
    proto = pkt.proto
    if proto == PROTO_TCP:
        if end < off + 20:
            c.malformed += 1
            return False
        sport, dport, seq, ack, doff, flags, window = _TCP(frame, off)
        thl = (doff >> 4) * 4
        if thl < 20 or length < thl:
            c.malformed += 1
            return False
        pkt.sport, pkt.dport, pkt.tcp_seq, pkt.tcp_ack = sport, dport, seq, ack
        pkt.tcp_flags, pkt.tcp_window = flags, window
        pkt.payload = frame[off + thl:end] if end > off + thl else b""
        pkt.payload_len = length - thl
        return True
    if proto == PROTO_UDP:
        if end < off + 8:
            c.malformed += 1
            return False
        sport, dport = _HH(frame, off)
        ulen = _H(frame, off + 4)[0]
        if ulen < 8 or ulen > length:
            c.malformed += 1
            return False
        pkt.sport, pkt.dport = sport, dport
        pkt.payload = frame[off + 8:min(end, off + ulen)]
        pkt.payload_len = ulen - 8
        return True
    if proto in (PROTO_ICMP, PROTO_ICMPV6):
        if end < off + 4 or length < 4:
            c.malformed += 1
            return False
        pkt.icmp_type, pkt.icmp_code = frame[off], frame[off + 1]
        pkt.payload = frame[off + 8:end] if end > off + 8 else b""
        pkt.payload_len = max(0, length - 8)
        errors = ICMP_ERRORS_V4 if proto == PROTO_ICMP else ICMP_ERRORS_V6
        if pkt.icmp_type in errors:
            pkt.icmp_quote = _quote(frame, off + 8, end, proto == PROTO_ICMP)
        return True
    pkt.payload_len = max(0, length)
    return True


def _quote(frame: bytes, off: int, end: int, v4: bool) -> IcmpQuote | None:
    """The original datagram an ICMP error quotes (its IP header and first 8 bytes)."""
    if v4:
        if end < off + 20 or frame[off] >> 4 != 4:
            return None
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        src, dst = _ntoa(frame[off + 12:off + 16]), _ntoa(frame[off + 16:off + 20])
        tp = off + ihl
    else:
        if end < off + 40 or frame[off] >> 4 != 6:
            return None
        proto = frame[off + 6]
        src = _ntop6(_AF6, frame[off + 8:off + 24])
        dst = _ntop6(_AF6, frame[off + 24:off + 40])
        tp = off + 40
    sport = dport = None
    if proto in (PROTO_TCP, PROTO_UDP) and end >= tp + 4:
        sport, dport = _HH(frame, tp)
    return IcmpQuote(src_ip=src, dst_ip=dst, proto=proto, sport=sport, dport=dport)
