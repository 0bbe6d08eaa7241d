"""SYN and UDP floods: a packet rate from one sender to one destination address.

The sender is keyed by its MAC (the last hop), so a flood with random spoofed source
addresses still has one key; when many distinct source addresses share that MAC the
finding is ``spoofed-*`` and names the MAC only. Rates use a two-bucket sliding
window (the previous window weighted by how much of it still overlaps), so state per
key is a few integers whatever the packet rate.

Load shedding: :meth:`FloodDetector.shed_wanted` names the destinations of floods in
progress; the live worker has the kernel filter sample those packets 1 in
``filter_shed_sample`` (:mod:`edgeguard.net.shed`) and tells :meth:`shed_applied` when,
so a packet captured after that moment counts as ``filter_shed_sample`` packets and the
rates stay true. ``replay`` never sheds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgeguard.events import Finding, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.base import ShedTarget
from edgeguard.net.detect.common import (
    BoundedTable,
    CountTable,
    endpoint,
    is_multicast_or_broadcast,
    summary,
)
from edgeguard.net.detect.evidence import FloodEvidence
from edgeguard.net.filter import power_of_two_floor
from edgeguard.net.packet import Packet, PacketClass

__all__ = ["KIND", "SUBTYPES", "FloodDetector", "ShedTarget"]

KIND = "flood"
#: ``<syn|udp>-flood``, ``spoofed-`` when the sources behind the MAC are spoofed.
SUBTYPES = ("syn-flood", "udp-flood", "spoofed-syn-flood", "spoofed-udp-flood")

FloodKey = tuple[str, str, str]  # (sender MAC or address, destination, "syn" | "udp")
_BEP15 = b"\x00\x00\x04\x17\x27\x10\x19\x80"
_UTP_CONTROL = (b"\x11", b"\x21", b"\x31", b"\x41")  # uTP v1 FIN, STATE, RESET, SYN


class Rate:
    """One sender's packet rate toward one address, and what a finding would name.

    (A plain class, not a dataclass: compiled, a dataclass's generated ``__init__``
    stays interpreted, and a flood of many targets makes one of these per packet.)
    """

    __slots__ = ("active", "below_since", "cur", "first", "last", "mac", "more_sources",
                 "packets", "peak", "ports", "prev", "samples", "sources", "started",
                 "win_start")

    def __init__(self, first: float, last: float, mac: str) -> None:
        self.first = first
        self.last = last
        self.mac = mac
        self.win_start = 0.0
        self.cur = 0
        self.prev = 0
        self.packets = 0
        self.peak = 0.0
        self.active = False
        self.started = 0.0
        self.below_since: float | None = None
        self.sources: dict[str, int] = {}  # capped
        self.more_sources = False
        self.ports: dict[int, None] = {}  # capped
        #: the first packets, put into words (:func:`summary`) only if a finding is
        #: made: most counters never make one, and the text costs more than the rest
        self.samples: list[Packet] = []

    def note(self, pkt: Packet, source_cap: int, max_ports: int) -> None:
        """Remember a few sources, ports and samples (all capped)."""
        sources, src = self.sources, pkt.src_ip
        seen = sources.get(src)
        if seen is not None:
            sources[src] = seen + 1
        elif len(sources) < source_cap:
            sources[src] = 1
        else:
            self.more_sources = True
        if len(self.ports) <= max_ports:
            self.ports[pkt.dport] = None
        if len(self.samples) < 3:
            self.samples.append(pkt)

    def add(self, ts: float, window: float, weight: int = 1) -> float:
        """Count ``weight`` packets at ``ts``; return the sliding rate (packets/s)."""
        if self.packets == 0:
            self.win_start = ts
        elapsed = ts - self.win_start
        if elapsed >= window:
            steps = math.floor(elapsed / window)
            self.prev = self.cur if steps == 1 else 0
            self.cur = 0
            self.win_start += steps * window
            elapsed = ts - self.win_start
        self.cur += weight
        self.packets += weight
        last = self.last  # (per packet: a comparison, not a max() call)
        self.last = ts if ts > last else last
        overlap = 1.0 - elapsed / window
        estimate = self.prev * (overlap if overlap > 0.0 else 0.0) + self.cur
        return estimate / window


class FloodDetector:
    name = "flood"
    # (set per instance: mypyc compiles class attributes with literal defaults only)

    def __init__(self, cfg: NetworkConfig) -> None:
        self.wants: frozenset[PacketClass] = frozenset({6, 17})  # TCP SYNs and UDP
        self.cfg = cfg.flood
        self.summaries = cfg.detect.summaries
        # per-packet thresholds as native attributes (not read through the config)
        self._syn_rate: float = self.cfg.syn_rate
        self._udp_rate: float = self.cfg.udp_rate
        self._window: float = self.cfg.window
        self._source_cap: int = self.cfg.spoofed_sources + 1
        self._max_ports: int = self.cfg.max_ports
        self.rates: BoundedTable[FloodKey, Rate] = BoundedTable(self.cfg.max_entries)
        # UDP datagrams per (source, destination) address pair: a flood's target that
        # talks back as much is in a conversation (QUIC, RTP), not flooded
        self.pairs: CountTable[tuple[str, str]] = CountTable(self.cfg.max_entries)
        self.n_packets = 0
        # The capture filter passes 1 in ``filter_udp_sample`` large UDP datagrams
        # without a P2P shape: such a datagram stands for that many (0: no sampling).
        self.udp_weight = max(1, power_of_two_floor(cfg.filter_udp_sample))
        self.small_udp = cfg.filter_small_udp
        #: the floods in progress (an index into ``rates``: tick and shedding look at
        #: these, not at every counter)
        self.active: dict[FloodKey, Rate] = {}
        self.shed_sample = power_of_two_floor(cfg.filter_shed_sample)
        self.shed_max = cfg.filter_shed_max
        #: what the kernel samples now: target -> packet time from which it does
        self.shed: dict[ShedTarget, float] = {}
        self.shed_weighted = 0

    def _weight(self, pkt: Packet) -> int:
        if pkt.payload_len <= self.small_udp or pkt.dport == 6771:
            return 1
        head = pkt.payload[:8]
        if head.startswith((_BEP15, b"d1:")) or head[:1] in _UTP_CONTROL:
            return 1  # P2P-shaped: the filter passes every one
        return self.udp_weight

    def observe(self, pkt: Packet) -> list[Finding]:
        proto, dst, ts = pkt.proto, pkt.dst_ip, pkt.ts
        if proto == 6 and pkt.tcp_flags & 0x16 == 0x02:
            kind = "syn"
            weight = 1
            threshold = self._syn_rate
        elif proto == 17 and dst and not is_multicast_or_broadcast(dst):
            kind = "udp"
            self.pairs.add_one((pkt.src_ip, dst))
            weight = self._weight(pkt)
            threshold = self._udp_rate
        else:
            return []
        self.n_packets += 1
        key = (pkt.src_mac or pkt.src_ip, dst, kind)
        st = self.rates.touch(key)
        if st is None:
            st = Rate(first=ts, last=ts, mac=pkt.src_mac)
            self.rates.insert(key, st)
        if self.shed:
            since = self.shed.get((dst, kind))
            if since is not None and ts >= since:
                weight = self.shed_sample
                self.shed_weighted += 1
        rate = st.add(ts, self._window, weight)
        st.note(pkt, self._source_cap, self._max_ports)
        if rate < threshold:
            if st.below_since is None:
                st.below_since = ts
            return []
        st.below_since = None
        st.peak = max(st.peak, rate)
        if st.active or len(st.ports) > self._max_ports:
            return []
        if kind == "udp" and (self.pairs.get((pkt.dst_ip, pkt.src_ip)) or 0) > \
                self.cfg.udp_max_reverse_ratio * (self.pairs.get((pkt.src_ip, pkt.dst_ip)) or 0):
            return []
        st.active, st.started = True, pkt.ts
        self.active[key] = st
        return [self._finding(key, st, ended=False)]

    def tick(self, now: float) -> list[Finding]:
        out: list[Finding] = []
        for key, st in list(self.active.items()):
            if self.rates.get(key) is not st:  # evicted from the capped table: forgotten
                del self.active[key]
                continue
            quiet = now - st.last >= self.cfg.end_after
            slow = st.below_since is not None and now - st.below_since >= self.cfg.end_after
            if quiet or slow:
                st.active = False
                del self.active[key]
                if self.summaries:
                    out.append(self._finding(key, st, ended=True))
        while (old := self.rates.oldest()) is not None and not old[1].active and \
                now - old[1].last > max(self.cfg.end_after, self.cfg.window) * 2:
            self.rates.pop(old[0])
        return out

    def forget(self, address: str) -> None:
        """An operator unblocked ``address`` (a sender's MAC or one of a flood's source
        addresses): the floods it counts toward end silently, so one that goes on is
        reported again as a new flood."""
        for key, _ in self.rates.pop_where(
                lambda key, st: key[0] == address or st.mac == address
                or address in st.sources):
            self.active.pop(key, None)

    def shed_wanted(self) -> frozenset[ShedTarget]:
        """Destinations of floods in progress the kernel should sample (IPv4 only,
        the ``filter_shed_max`` busiest); empty when shedding is off."""
        if self.shed_sample <= 1:
            return frozenset()
        peaks: dict[ShedTarget, float] = {}
        for (_, dst, kind), st in self.active.items():
            if dst and ":" not in dst and dst != "0.0.0.0":  # noqa: S104
                peaks[dst, kind] = max(peaks.get((dst, kind), 0.0), st.peak)
        busiest = sorted(peaks, key=peaks.__getitem__, reverse=True)[:self.shed_max]
        return frozenset(busiest)

    def shed_applied(self, targets: frozenset[ShedTarget], since: float) -> None:
        """The kernel samples ``targets`` from packet time ``since`` (a target already
        shed keeps its earlier time)."""
        self.shed = {t: self.shed.get(t, since) for t in targets}

    def counters(self) -> Mapping[str, int]:
        return {"packets": self.n_packets, "rates": len(self.rates),
                "rates_evicted": self.rates.evicted,
                "active": len(self.active),
                "shed_targets": len(self.shed), "shed_weighted": self.shed_weighted}

    def _finding(self, key: FloodKey, st: Rate, ended: bool) -> Finding:
        _, dst, kind = key
        distinct = len(st.sources)
        spoofed = st.more_sources or distinct >= self.cfg.spoofed_sources
        subtype = f"spoofed-{kind}-flood" if spoofed else f"{kind}-flood"
        top = max(st.sources, key=st.sources.__getitem__) if st.sources else ""
        actor = endpoint(None if spoofed else top, st.mac)
        name = st.mac if spoofed else top
        threshold = self.cfg.syn_rate if kind == "syn" else self.cfg.udp_rate
        ports = tuple(st.ports)
        duration = st.last - st.first
        state = "ended" if ended else "in progress"
        return Finding(
            kind=KIND, subtype=subtype,
            message=(f"{name} {subtype} toward {dst} ports {','.join(map(str, ports[:4]))}: "
                     f"peak {st.peak:.0f}/s over {self.cfg.window:g}s (threshold "
                     f"{threshold:g}/s), {st.packets} packets, {state}"),
            identifier=f"flood:{name}:{dst}:{subtype}", severity=Severity.SEVERE,
            source=actor,
            destinations=(endpoint(dst, None, ports[0] if len(ports) == 1 else None),),
            transport="tcp" if kind == "syn" else "udp",
            first_seen=st.first, last_seen=st.last, count=st.packets,
            evidence=FloodEvidence(
                rate_pps=st.peak, threshold_pps=float(threshold), window_s=float(self.cfg.window),
                packets=st.packets, duration_s=duration, dst_ports=ports,
                distinct_sources=distinct + (1 if st.more_sources else 0), spoofed=spoofed,
                ended=ended, samples=tuple(summary(pkt) for pkt in st.samples)))
