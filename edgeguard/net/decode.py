"""Frame decoders: Ethernet (+802.1Q), ARP, IPv4, IPv6 (+extension headers), TCP, UDP,
ICMP/ICMPv6 (+ the datagram quoted in errors), with ``struct`` at fixed offsets.

:func:`decode` turns one frame into a flat :class:`~edgeguard.net.packet.Packet` or
returns None and counts why: a malformed or truncated frame is counted and skipped, it
never raises (a hypothesis test feeds it random bytes). Only the bytes the filter kept
are present (snap length), so the transport payload is cut there, while
``payload_len`` comes from the headers.

Speed (``replay`` decodes every frame the filter keeps, in place in the file's buffer:
:func:`decode_at`): the hot layers (Ethernet, IPv4, IPv6, TCP, UDP) read their fields
by indexing bytes, which mypyc compiles to C; each layer returns a fixed tuple (a C
struct when compiled, no allocation) and the packet is built once, positionally, at the
end. Address and MAC text is remembered per raw address, since a capture repeats few.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

from edgeguard.net.packet import ArpInfo, IcmpQuote, Packet

__all__ = ["DecodeCounters", "decode", "decode_at", "mac_text"]

# Final: compiled, each is a C constant (a plain module global is a dict lookup per use)
ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_ARP: Final = 0x0806
IPV6_EXT_HEADERS: Final = frozenset((0, 43, 60, 51, 135, 139, 140))  # + AH, mobility, HIP, shim6
IPV6_FRAGMENT: Final = 44
IPV6_NO_NEXT: Final = 59
MAX_EXT_HEADERS: Final = 8
PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ICMPV6: Final = 58
ICMP_ERRORS_V4: Final = (3, 4, 5, 11, 12)  # unreachable, quench, redirect, time exceeded, param
ICMP_ERRORS_V6: Final = (1, 2, 3, 4)

_H: Final = struct.Struct(">H").unpack_from
_HH: Final = struct.Struct(">HH").unpack_from
_ARP: Final = struct.Struct(">HHBBH6s4s6s4s").unpack_from
_ntop6: Final = socket.inet_ntop
_AF6: Final = socket.AF_INET6

#: What a transport header gives the packet, in :class:`Packet` field order: sport,
#: dport, tcp_flags, tcp_seq, tcp_ack, tcp_window, icmp_type, icmp_code, icmp_quote,
#: payload, payload_len; then the TCP header length. ``payload_len`` -1: unreadable.
Transport = tuple[int, int, int, int, int, int, int, int, IcmpQuote | None, bytes, int, int]
#: What an IP header gives: version, src_ip, dst_ip, ttl, proto, IPv4 id, transport.
#: Version 0: unreadable (counted).
Network = tuple[int, str, str, int, int, int, Transport]
_NO_TRANSPORT: Final[Transport] = (0, 0, 0, 0, 0, 0, -1, -1, None, b"", 0, 0)  # defaults
_BAD_TRANSPORT: Final[Transport] = (0, 0, 0, 0, 0, 0, -1, -1, None, b"", -1, 0)
_BAD_NETWORK: Final[Network] = (0, "", "", 0, 0, 0, _BAD_TRANSPORT)

#: Raw address -> its text; cleared when full (a spoofed flood sends new ones forever).
_ADDRESS_TEXT: Final[dict[bytes, str]] = {}
_ADDRESS_TEXT_CAP: Final = 1 << 16
#: Raw MAC -> its text ("" for the all-zero MAC); cleared when full, like addresses.
_MAC_TEXT: Final[dict[bytes, str]] = {}
_MAC_TEXT_CAP: Final = 1 << 14
#: An all-zero MAC: the link had none (a rewritten raw-IP or cooked capture).
_NO_MAC: Final = bytes(6)


def _address_text(raw: bytes) -> str:
    """The text of a 4- or 16-byte address (call as ``_ADDRESS_TEXT.get(raw) or
    _address_text(raw)``: the lookup is the common case)."""
    if len(_ADDRESS_TEXT) >= _ADDRESS_TEXT_CAP:
        _ADDRESS_TEXT.clear()
    text = _ntoa(raw) if len(raw) == 4 else _ntop6(_AF6, raw)
    _ADDRESS_TEXT[raw] = text
    return text


def _mac(raw: bytes) -> str:
    """The text of a MAC as packets carry it ("" for none), remembered (a slice as the
    key: indexing six bytes into a number costs pure Python more than it saves)."""
    text = _MAC_TEXT.get(raw)
    if text is None:
        if len(_MAC_TEXT) >= _MAC_TEXT_CAP:
            _MAC_TEXT.clear()
        text = "" if raw == _NO_MAC else raw.hex(":")
        _MAC_TEXT[raw] = text
    return text


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
    return decode_at(frame, 0, len(frame), ts, wire_len, c=c)


def decode_at(f: bytes, start: int, end: int, ts: float, wire_len: int, *,
              c: DecodeCounters) -> Packet | None:
    """The Ethernet frame ``f[start:end]``, read in place (as :func:`decode`)."""
    if end - start < 14:
        c.malformed += 1
        return None
    ethertype = (f[start + 12] << 8) | f[start + 13]
    off = start + 14
    vlan: int | None = None
    if ethertype == 0x8100 or ethertype == 0x88A8:  # noqa: PLR1714 (C compares, no tuple)
        if end - start < 18:
            c.malformed += 1
            return None
        vlan = ((f[start + 14] << 8) | f[start + 15]) & 0x0FFF
        ethertype = (f[start + 16] << 8) | f[start + 17]
        off = start + 18
    arp = None
    if ethertype == ETH_IPV4:
        net = _ipv4(f, off, end, c)
    elif ethertype == ETH_IPV6:
        net = _ipv6(f, off, end, c)
    elif ethertype == ETH_ARP:
        arp = _arp(f, off, end, c)
        if arp is None:
            return None
        net = (0, "", "", 0, 0, 0, _NO_TRANSPORT)
    else:
        c.not_ip += 1
        return None
    version, src, dst, ttl, proto, ip_id, (sport, dport, flags, seq, ack, window,
                                           icmp_type, icmp_code, quote, payload,
                                           payload_len, thl) = net
    if payload_len < 0:
        return None
    c.decoded += 1
    return Packet(ts, wire_len, _mac(f[start + 6:start + 12]), _mac(f[start:start + 6]),
                  ethertype, vlan, version, src, dst, ttl, proto, sport, dport, flags, seq,
                  ack, window, icmp_type, icmp_code, quote, arp, payload, payload_len, ip_id,
                  thl)


def _arp(f: bytes, off: int, end: int, c: DecodeCounters) -> ArpInfo | None:
    if end < off + 28:
        c.malformed += 1
        return None
    htype, ptype, hlen, plen, oper, sha, spa, tha, tpa = _ARP(f, off)
    if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
        c.malformed += 1
        return None
    return ArpInfo(op=oper, sender_mac=sha.hex(":"), sender_ip=_ntoa(spa),
                   target_mac=tha.hex(":"), target_ip=_ntoa(tpa))


def _ipv4(f: bytes, off: int, n: int, c: DecodeCounters) -> Network:
    """``n``: the end of the captured frame."""
    if n < off + 20:
        c.malformed += 1
        return _BAD_NETWORK
    vihl = f[off]
    ihl = (vihl & 0x0F) * 4
    total = (f[off + 2] << 8) | f[off + 3]
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or n < off + ihl:
        c.malformed += 1
        return _BAD_NETWORK
    if ((f[off + 6] << 8) | f[off + 7]) & 0x1FFF:
        c.fragments += 1
        return _BAD_NETWORK
    proto = f[off + 9]
    transport = _transport(f, proto, off + ihl, min(n, off + total), total - ihl, c=c)
    if transport[10] < 0:
        return _BAD_NETWORK
    src, dst = f[off + 12:off + 16], f[off + 16:off + 20]
    return (4, _ADDRESS_TEXT.get(src) or _address_text(src),
            _ADDRESS_TEXT.get(dst) or _address_text(dst), f[off + 8], proto,
            (f[off + 4] << 8) | f[off + 5], transport)


def _ipv6(f: bytes, off: int, n: int, c: DecodeCounters) -> Network:  # noqa: PLR0911
    if n < off + 40:
        c.malformed += 1
        return _BAD_NETWORK
    if f[off] >> 4 != 6:
        c.malformed += 1
        return _BAD_NETWORK
    remaining = (f[off + 4] << 8) | f[off + 5]
    nh = f[off + 6]
    pos = off + 40
    for _ in range(MAX_EXT_HEADERS):
        if nh in IPV6_EXT_HEADERS:
            if n < pos + 2:
                c.malformed += 1
                return _BAD_NETWORK
            size = (f[pos + 1] + 2) * 4 if nh == 51 else (f[pos + 1] + 1) * 8
        elif nh == IPV6_FRAGMENT:
            if n < pos + 8:
                c.malformed += 1
                return _BAD_NETWORK
            if _H(f, pos + 2)[0] & 0xFFF8:
                c.fragments += 1
                return _BAD_NETWORK
            size = 8
        else:
            break
        nh = f[pos]
        pos += size
        remaining -= size
        if remaining < 0:
            c.malformed += 1
            return _BAD_NETWORK
    else:
        c.malformed += 1  # a chain longer than any real stack sends
        return _BAD_NETWORK
    transport = (_NO_TRANSPORT if nh == IPV6_NO_NEXT
                 else _transport(f, nh, pos, min(n, pos + remaining), remaining, c=c))
    if transport[10] < 0:
        return _BAD_NETWORK
    src, dst = f[off + 8:off + 24], f[off + 24:off + 40]
    return (6, _ADDRESS_TEXT.get(src) or _address_text(src),
            _ADDRESS_TEXT.get(dst) or _address_text(dst), f[off + 7], nh, 0, transport)


def _transport(f: bytes, proto: int, off: int, end: int,  # noqa: PLR0911
               length: int, *, c: DecodeCounters) -> Transport:
    """``end`` = last captured byte of this datagram; ``length`` = its size per headers."""
    if proto == PROTO_TCP:
        if end < off + 20:
            c.malformed += 1
            return _BAD_TRANSPORT
        thl = (f[off + 12] >> 4) * 4
        if thl < 20 or length < thl:
            c.malformed += 1
            return _BAD_TRANSPORT
        return ((f[off] << 8) | f[off + 1], (f[off + 2] << 8) | f[off + 3], f[off + 13],
                (f[off + 4] << 24) | (f[off + 5] << 16) | (f[off + 6] << 8) | f[off + 7],
                (f[off + 8] << 24) | (f[off + 9] << 16) | (f[off + 10] << 8) | f[off + 11],
                (f[off + 14] << 8) | f[off + 15], -1, -1, None,
                f[off + thl:end] if end > off + thl else b"", length - thl, thl)
    if proto == PROTO_UDP:
        if end < off + 8:
            c.malformed += 1
            return _BAD_TRANSPORT
        ulen = (f[off + 4] << 8) | f[off + 5]
        if ulen < 8 or ulen > length:
            c.malformed += 1
            return _BAD_TRANSPORT
        return ((f[off] << 8) | f[off + 1], (f[off + 2] << 8) | f[off + 3], 0, 0, 0, 0, -1,
                -1, None, f[off + 8:min(end, off + ulen)], ulen - 8, 0)
    if proto in (PROTO_ICMP, PROTO_ICMPV6):
        if end < off + 4 or length < 4:
            c.malformed += 1
            return _BAD_TRANSPORT
        icmp_type, icmp_code = f[off], f[off + 1]
        errors = ICMP_ERRORS_V4 if proto == PROTO_ICMP else ICMP_ERRORS_V6
        quote = (_quote(f, off + 8, end, proto == PROTO_ICMP) if icmp_type in errors
                 else None)
        return (0, 0, 0, 0, 0, 0, icmp_type, icmp_code, quote,
                f[off + 8:end] if end > off + 8 else b"", max(0, length - 8), 0)
    return (0, 0, 0, 0, 0, 0, -1, -1, None, b"", max(0, length), 0)


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
