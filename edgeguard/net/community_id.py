"""Community ID v1 flow hashes (``network.community_id``), as Zeek and Suricata emit them.

The specification (https://github.com/corelight/community-id-spec) hashes, with SHA-1,
``seed (2 bytes) || source address || destination address || protocol (1 byte) ||
0 (1 byte) || source port (2 bytes) || destination port (2 bytes)``, all in network
byte order, after ordering the two endpoints so the smaller (address, then port) comes
first: both directions of a flow get the same id. The result is ``"1:" +
base64(digest)``. ICMP and ICMPv6 have no ports: the type stands for the source port
and the paired type (echo -> echo reply, ...) for the destination port; an unpaired
type is one-way (type, code) and is not reordered. Other protocols hash without ports.

Tested against the reference implementation (the ``communityid`` package) and the
published baseline vectors in tests/unit/net/test_community_id.py.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

__all__ = ["ICMP", "ICMP6", "SCTP", "TCP", "UDP", "community_id", "protocol_number"]

TCP = 6
UDP = 17
ICMP = 1
ICMP6 = 58
SCTP = 132

_PORT_PROTOCOLS = frozenset({TCP, UDP, SCTP})
_NAMES = {"tcp": TCP, "udp": UDP, "icmp": ICMP, "icmp6": ICMP6, "ipv6-icmp": ICMP6,
          "sctp": SCTP}

# The request/response pairs (Zeek's mapping, kept by the specification).
_ICMP_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136,
                136: 135, 139: 140, 140: 139, 144: 145, 145: 144}


def protocol_number(transport: str | None) -> int | None:
    """The IP protocol number of an ECS ``network.transport`` name (None: unknown)."""
    return None if transport is None else _NAMES.get(transport.lower())


def community_id(protocol: int, source: str, destination: str, source_port: int | None = None,
                 destination_port: int | None = None, *, seed: int = 0) -> str:
    """The Community ID v1 of one flow. For ICMP/ICMPv6 the ports are type and code.

    Raises ValueError on an address that is not IP, mixed address families, a port out
    of range, or a port protocol without ports.
    """
    src = ipaddress.ip_address(source).packed
    dst = ipaddress.ip_address(destination).packed
    if len(src) != len(dst):
        raise ValueError("source and destination are of different address families")
    if (source_port is None) != (destination_port is None):
        raise ValueError("give both ports or none")
    if protocol in _PORT_PROTOCOLS and source_port is None:
        raise ValueError(f"protocol {protocol} needs ports")
    one_way = False
    sport, dport = source_port, destination_port
    if sport is not None and dport is not None and protocol in (ICMP, ICMP6):
        pairs = _ICMP_PAIRS if protocol == ICMP else _ICMP6_PAIRS
        if sport in pairs:
            dport = pairs[sport]
        else:
            one_way = True
    ports = b""
    if sport is not None and dport is not None:
        for port in (sport, dport):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port {port} out of range")
        ports_src, ports_dst = struct.pack("!H", sport), struct.pack("!H", dport)
        if not one_way and (src, ports_src) > (dst, ports_dst):
            src, dst, ports_src, ports_dst = dst, src, ports_dst, ports_src
        ports = ports_src + ports_dst
    elif src > dst:
        src, dst = dst, src
    digest = hashlib.sha1(  # noqa: S324 - the specification's hash, not a security use
        struct.pack("!H", seed) + src + dst + struct.pack("!BB", protocol, 0) + ports,
    ).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")
