"""Link-layer headers other than Ethernet, rewritten to Ethernet before the filter.

The capture filter (:mod:`edgeguard.net.filter`) and the decoders read Ethernet frames.
A capture of another link type is made readable by replacing its link header with a
14-byte Ethernet header carrying the same network protocol: Linux cooked capture (SLL,
SLL2: what ``tcpdump -i any`` writes; the sender's MAC is kept when the header has one),
raw IP (tun, WireGuard, many phones: DLT_RAW 12/14 and LINKTYPE_RAW 101, IPv4 228,
IPv6 229), BSD null/loopback (0, 108), PPP (9, 50) and Cisco HDLC (104). Unknown MACs
are all-zero, which the decoder reports as no MAC. Every other link type is not
supported: ``replay`` names it on stderr and exits 2 (:class:`UnsupportedLinkType`).

Cost: one header build and one copy per frame, only for non-Ethernet captures.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Final

from edgeguard.net.pcapfile import CaptureFormatError

__all__ = ["ETHERNET", "SUPPORTED", "UnsupportedLinkType", "converter", "to_ethernet"]

ETHERNET: Final = 1
_IPV4, _IPV6 = 0x0800, 0x86DD
_NO_MAC = bytes(6)
_PPP_PROTOCOLS = {0x0021: _IPV4, 0x0057: _IPV6}
#: BSD address families of IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
_AF_INET, _AF_INET6 = 2, (24, 28, 30)
_H = struct.Struct(">H").unpack_from
_I_BE = struct.Struct(">I").unpack_from
_I_LE = struct.Struct("<I").unpack_from

Convert = Callable[[bytes], bytes | None]


class UnsupportedLinkType(CaptureFormatError):
    """Frames of a link type ``replay`` cannot decode were in the file."""


def _eth(ethertype: int, payload: bytes, src: bytes = _NO_MAC) -> bytes:
    return _NO_MAC + src + ethertype.to_bytes(2, "big") + payload


def _raw(frame: bytes) -> bytes | None:
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4:
        return _eth(_IPV4, frame)
    return _eth(_IPV6, frame) if version == 6 else None


def _sll(frame: bytes) -> bytes | None:
    # pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
    if len(frame) < 16:
        return None
    halen = _H(frame, 4)[0]
    src = frame[6:12] if halen == 6 else _NO_MAC
    return _eth(_H(frame, 14)[0], frame[16:], src)


def _sll2(frame: bytes) -> bytes | None:
    # protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
    if len(frame) < 20:
        return None
    src = frame[12:18] if frame[11] == 6 else _NO_MAC
    return _eth(_H(frame, 0)[0], frame[20:], src)


def _family(af: int) -> int | None:
    if af == _AF_INET:
        return _IPV4
    return _IPV6 if af in _AF_INET6 else None


def _null(frame: bytes) -> bytes | None:
    """DLT_NULL: the address family in the capturing host's byte order (either)."""
    if len(frame) < 4:
        return None
    ethertype = _family(_I_LE(frame, 0)[0]) or _family(_I_BE(frame, 0)[0])
    return None if ethertype is None else _eth(ethertype, frame[4:])


def _loop(frame: bytes) -> bytes | None:
    """DLT_LOOP: the address family in network byte order."""
    if len(frame) < 4:
        return None
    ethertype = _family(_I_BE(frame, 0)[0])
    return None if ethertype is None else _eth(ethertype, frame[4:])


def _ppp(frame: bytes) -> bytes | None:
    """PPP, with or without the HDLC address/control bytes ``ff 03``."""
    off = 2 if frame[:2] == b"\xff\x03" else 0
    if len(frame) < off + 2:
        return None
    ethertype = _PPP_PROTOCOLS.get(_H(frame, off)[0])
    return None if ethertype is None else _eth(ethertype, frame[off + 2:])


def _hdlc(frame: bytes) -> bytes | None:
    """Cisco HDLC: address, control, then an ethertype."""
    if len(frame) < 4:
        return None
    return _eth(_H(frame, 2)[0], frame[4:])


def _ipv4(frame: bytes) -> bytes | None:
    return _eth(_IPV4, frame)


def _ipv6(frame: bytes) -> bytes | None:
    return _eth(_IPV6, frame)


#: link type -> its converter (LINKTYPE_* numbers as pcap files store them).
_CONVERTERS: Mapping[int, Convert] = {
    113: _sll, 276: _sll2, 12: _raw, 14: _raw, 101: _raw, 228: _ipv4, 229: _ipv6,
    0: _null, 108: _loop, 9: _ppp, 50: _ppp, 104: _hdlc,
}
SUPPORTED = frozenset({ETHERNET, *_CONVERTERS})


def converter(linktype: int) -> Convert | None:
    """The rewrite for ``linktype`` (None for Ethernet, which needs none)."""
    if linktype == ETHERNET:
        return None
    conv = _CONVERTERS.get(linktype)
    if conv is None:
        raise UnsupportedLinkType(f"link type {linktype} is not supported")
    return conv


def to_ethernet(linktype: int, frame: bytes) -> bytes | None:
    """``frame`` of ``linktype`` as an Ethernet frame; None when its link header is
    damaged or carries neither IPv4 nor IPv6 (or ARP, for the cooked captures)."""
    conv = converter(linktype)
    return frame if conv is None else conv(frame)
