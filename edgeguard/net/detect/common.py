"""Small shared pieces of the detectors: bounded tables, packet summaries, entropy.

Every table a detector keeps is a :class:`BoundedTable`: a hard cap, least recently
used entries evicted first, and a counter of evictions for ``edgeguard status``. That
is what keeps a flood of a million spoofed sources from growing memory.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar

from edgeguard.events import Endpoint
from edgeguard.net.config import ExclusionProtocol, PortExclusion
from edgeguard.net.packet import Packet, TcpFlags

__all__ = [
    "BoundedTable",
    "CountTable",
    "ExclusionSet",
    "endpoint",
    "entropy_ratio",
    "flag_text",
    "is_multicast_or_broadcast",
    "summary",
]

K = TypeVar("K")
V = TypeVar("V")

#: How many packet summaries a finding carries.
MAX_SAMPLES = 3


class BoundedTable(Generic[K, V]):
    """A dict with a hard cap; inserting into a full table evicts the least recently
    used entry (or the first one ``prefer_evict`` accepts among the oldest few)."""

    __slots__ = ("_data", "cap", "evicted", "get", "has", "on_evict", "prefer_evict")

    def __init__(self, cap: int, on_evict: Callable[[K, V], None] | None = None,
                 prefer_evict: Callable[[V], bool] | None = None) -> None:
        self.cap = max(1, cap)
        self._data: OrderedDict[K, V] = OrderedDict()
        #: Look up without refreshing recency (the dict's own ``get``: detectors call
        #: it several times per packet, so no Python frame in between).
        self.get: Callable[[K], V | None] = self._data.get
        #: ``key in table`` without a Python frame (for tables whose values are None).
        self.has: Callable[[object], bool] = self._data.__contains__
        self.evicted = 0
        self.on_evict = on_evict
        self.prefer_evict = prefer_evict

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def touch(self, key: K) -> V | None:
        """Look up and mark as recently used."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        data = self._data
        if key in data:
            data[key] = value
            data.move_to_end(key)
            return
        if len(data) >= self.cap:
            self._evict_one()
        data[key] = value

    def insert(self, key: K, value: V) -> None:
        """:meth:`put` for a key just found absent (by :meth:`touch` or ``get``): one
        lookup less."""
        data = self._data
        if len(data) >= self.cap:
            self._evict_one()
        data[key] = value

    def swap(self, key: K, value: V) -> V | None:
        """:meth:`put`, returning the value it replaces (one call where a detector
        would look up, then store). Only for tables whose values are never None: a
        stored None would read as "absent" and cost an eviction."""
        data = self._data
        old = data.pop(key, None)
        if old is None and len(data) >= self.cap:
            self._evict_one()
        data[key] = value
        return old

    def _evict_one(self) -> None:
        data = self._data
        victim: K | None = None
        if self.prefer_evict is not None:
            # Look at the oldest few only: O(1) per insert, and under a flood the oldest
            # entries are the flood's one-packet sources anyway.
            for index, (key, value) in enumerate(data.items()):
                if index >= 8:
                    break
                if self.prefer_evict(value):
                    victim = key
                    break
        if victim is None:
            victim = next(iter(data))
        value = data.pop(victim)
        self.evicted += 1
        if self.on_evict is not None:
            self.on_evict(victim, value)

    def pop(self, key: K) -> V | None:
        data = self._data
        # most pops miss (a TCP ACK asks for a probe waiting on its flow): a plain dict
        # membership test is much cheaper than OrderedDict.pop's method call
        if key not in data:
            return None
        return data.pop(key, None)

    def pop_where(self, match: Callable[[K, V], bool]) -> list[tuple[K, V]]:
        """Remove every entry ``match`` accepts (a full walk: for rare operator actions
        such as forgetting an address, never per packet); returns them, oldest first."""
        gone = [(key, value) for key, value in self._data.items() if match(key, value)]
        for key, _ in gone:
            del self._data[key]
        return gone

    def oldest(self) -> tuple[K, V] | None:
        if not self._data:
            return None
        key = next(iter(self._data))
        return key, self._data[key]

    def items(self) -> Iterator[tuple[K, V]]:
        """Oldest first. Do not modify the table while iterating; copy first."""
        return iter(self._data.items())

    def clear(self) -> None:
        self._data.clear()


class CountTable(BoundedTable[K, int]):
    """A :class:`BoundedTable` of counts."""

    __slots__ = ()

    def add_one(self, key: K) -> None:
        """Count one more for ``key`` (1 when new) and mark it recently used."""
        data = self._data
        n = data.get(key)
        if n is not None:
            data[key] = n + 1
            data.move_to_end(key)
            return
        if len(data) >= self.cap:
            self._evict_one()
        data[key] = 1


class ExclusionSet:
    """The policy's known-benign ports, answered per (protocol, port) from a cache."""

    __slots__ = ("_ports", "_rules", "_tcp", "_udp")

    def __init__(self, rules: tuple[PortExclusion, ...]) -> None:
        self._rules = rules
        # expanded once: per-packet checks are two set lookups
        ports: dict[int, set[int]] = {6: set(), 17: set()}
        for rule in rules:
            wanted = (6, 17) if rule.protocol is ExclusionProtocol.ANY else (
                (6,) if rule.protocol is ExclusionProtocol.TCP else (17,))
            for proto in wanted:
                ports[proto].update(rule.ports)
                if rule.port_range:
                    ports[proto].update(range(rule.port_range[0], rule.port_range[1] + 1))
        self._ports = {proto: frozenset(found) for proto, found in ports.items()}
        # per packet: two attributes, not a dict lookup by protocol number
        self._tcp: frozenset[int] = self._ports[6]
        self._udp: frozenset[int] = self._ports[17]

    def excluded(self, proto: int, port: int) -> bool:
        ports = self._ports.get(proto)
        return ports is not None and port in ports

    def to_service(self, pkt: Packet) -> bool:
        """Traffic to a known-benign service (and, for UDP, its replies): what the scan
        detector ignores. A TCP packet *from* such a port is not excluded."""
        proto = pkt.proto
        if proto == 6:
            return pkt.dport in self._tcp
        if proto == 17:
            ports = self._udp
            return pkt.dport in ports or pkt.sport in ports
        return False

    def packet_excluded(self, pkt: Packet) -> bool:
        """True when either port of a TCP/UDP packet is a known-benign service."""
        proto = pkt.proto
        if proto == 6:
            ports = self._tcp
        elif proto == 17:
            ports = self._udp
        else:
            return False
        return pkt.dport in ports or pkt.sport in ports



def endpoint(ip: str | None, mac: str | None = None, port: int | None = None) -> Endpoint:
    return Endpoint(ip=ip or None, mac=mac or None, port=port)


_FLAG_LETTERS = ((TcpFlags.FIN, "F"), (TcpFlags.SYN, "S"), (TcpFlags.RST, "R"),
                 (TcpFlags.PSH, "P"), (TcpFlags.ACK, "A"), (TcpFlags.URG, "U"),
                 (TcpFlags.ECE, "E"), (TcpFlags.CWR, "C"))


def _flag_letters(flags: int) -> str:
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"


#: Every 8-bit flag byte's letters, written once (a finding's samples ask per packet).
_FLAG_TEXT: Final = tuple(_flag_letters(flags) for flags in range(256))


def flag_text(flags: int) -> str:
    """tcpdump-style flag letters; ``none`` for a NULL probe."""
    return _FLAG_TEXT[flags] if 0 <= flags < 256 else _flag_letters(flags)


_PROTO = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def _host(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def summary(pkt: Packet) -> str:
    """One line per packet for a finding's samples, e.g.
    ``1795342343.212777 10.99.0.21:51000 > 10.99.0.10:22 tcp S len=0``."""
    stamp = f"{pkt.ts:.6f}"
    if pkt.arp is not None:
        arp = pkt.arp
        what = "request who-has" if arp.op == 1 else "reply"
        return (f"{stamp} arp {what} {arp.target_ip} tell {arp.sender_ip} "
                f"is-at {arp.sender_mac} (eth {pkt.src_mac} > {pkt.dst_mac})")
    proto = _PROTO.get(pkt.proto, f"proto{pkt.proto}")
    ports = pkt.proto in (6, 17)
    text = (f"{stamp} {_host(pkt.src_ip, pkt.sport if ports else None)} > "
            f"{_host(pkt.dst_ip, pkt.dport if ports else None)} {proto}")
    if pkt.proto == 6:
        text += f" {flag_text(pkt.tcp_flags)}"
    elif pkt.proto in (1, 58):
        text += f" type={pkt.icmp_type} code={pkt.icmp_code}"
    return f"{text} len={pkt.payload_len} mac={pkt.src_mac}"


def entropy_ratio(data: bytes) -> float:
    """Shannon entropy of ``data`` as a share of the maximum for its length (0..1):
    random bytes score ~0.9 or more, text and protocol headers ~0.6-0.7."""
    n = len(data)
    if n < 2:
        return 0.0
    counts = Counter(data)
    bits = -sum(c / n * math.log2(c / n) for c in counts.values())
    return bits / math.log2(min(n, 256))


@functools.lru_cache(maxsize=4096)
def is_multicast_or_broadcast(ip: str) -> bool:
    """Cheap textual test (no ipaddress parse on the hot path), remembered: the scan
    and flood detectors ask about every UDP datagram's destination, and a capture
    has few."""
    if ":" in ip:
        return ip.startswith("ff")
    first = ip.split(".", 1)[0]
    return (first.isdigit() and 224 <= int(first) <= 239) or ip == "255.255.255.255"
