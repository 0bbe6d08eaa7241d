"""Ping sweeps: one source asking for many addresses by ICMP echo or broadcast ARP.

nmap ``-sn`` on a local subnet uses ARP requests; off-link it uses ICMP echo (among
others). A sweep asks for addresses nobody has, so most requests stay unanswered; a
router resolving its live clients gets answers. Both the count of distinct addresses
and the unanswered share must cross the policy's thresholds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeguard.events import Finding, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.common import BoundedTable, endpoint, summary
from edgeguard.net.detect.evidence import ScanEvidence
from edgeguard.net.detect.intel import HostIntel
from edgeguard.net.detect.scan_state import median
from edgeguard.net.packet import ARP, Packet, PacketClass

__all__ = ["KIND", "SUBTYPES", "SweepDetector"]

KIND = "scan"  # a sweep is reported with the port scans
#: IPv4 (ICMP echo/timestamp or ARP) and IPv6 (ICMPv6 echo) sweeps.
SUBTYPES = ("ping-sweep", "ipv6-ping-sweep")

_BROADCAST = ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "")
#: Addresses asked from which a source counts as sweeping for the scan detector.
_SWEEPING = 4


@dataclass(slots=True)
class Sweeper:
    mac: str
    first: float
    last: float
    asked: dict[str, float] = field(default_factory=dict)  # address -> when asked
    answered: set[str] = field(default_factory=set)
    probes: int = 0
    reported: bool = False
    samples: list[str] = field(default_factory=list)


class SweepDetector:
    name = "sweep"
    # (set per instance: mypyc compiles class attributes with literal defaults only)

    def __init__(self, cfg: NetworkConfig, intel: HostIntel) -> None:
        self.wants: frozenset[PacketClass] = frozenset({ARP, 1, 58})  # ARP, ICMP(v6) echo
        self.cfg = cfg.scan
        self.intel = intel
        self.sweepers: BoundedTable[tuple[str, str], Sweeper] = BoundedTable(
            self.cfg.max_sources)
        self.n_packets = 0
        # an asker may remember a few times the threshold, no more
        self._cap = self.cfg.sweep_hosts * 4

    def observe(self, pkt: Packet) -> list[Finding]:
        arp = pkt.arp
        if arp is not None:
            if arp.op == 1 and arp.sender_ip != arp.target_ip and arp.target_mac in _BROADCAST \
                    and arp.sender_ip not in ("", "0.0.0.0"):  # noqa: S104
                return self._ask(pkt, arp.sender_ip, "arp", arp.target_ip)
            if arp.op == 2:
                self._answer(arp.target_ip, "arp", arp.sender_ip)
            return []
        if pkt.proto in (1, 58):
            # echo (and ICMP timestamp, nmap -PP) requests and their replies
            requests, replies = ((8, 13), (0, 14)) if pkt.proto == 1 else ((128,), (129,))
            method = "icmp" if pkt.proto == 1 else "icmp6"
            if pkt.icmp_type in requests:
                return self._ask(pkt, pkt.src_ip, method, pkt.dst_ip)
            if pkt.icmp_type in replies:
                self._answer(pkt.dst_ip, method, pkt.src_ip)
        return []

    def tick(self, now: float) -> list[Finding]:
        while (old := self.sweepers.oldest()) is not None and \
                now - old[1].last > self.cfg.sweep_window:
            self.sweepers.pop(old[0])
        return []

    def forget(self, address: str) -> None:
        """An operator unblocked ``address`` (an asker's IP or MAC): its sweeps are
        judged afresh, and the scan detector no longer takes its probes for a sweep's."""
        self.sweepers.pop_where(lambda key, sw: key[0] == address or sw.mac == address)
        self.intel.sweepers.pop(address)

    def counters(self) -> Mapping[str, int]:
        return {"packets": self.n_packets, "sweepers": len(self.sweepers),
                "sweepers_evicted": self.sweepers.evicted}

    def _ask(self, pkt: Packet, asker: str, method: str, target: str) -> list[Finding]:
        self.n_packets += 1
        key = (asker, method)
        sw = self.sweepers.touch(key)
        if sw is None:
            sw = Sweeper(mac=pkt.src_mac, first=pkt.ts, last=pkt.ts)
            self.sweepers.put(key, sw)
        sw.last = max(sw.last, pkt.ts)
        sw.probes += 1
        if len(sw.samples) < 3:
            sw.samples.append(summary(pkt))
        window = self.cfg.sweep_window
        if target not in sw.asked and len(sw.asked) >= self._cap:
            # forget the oldest half: bounded, and a sweep refills it at once
            for addr in sorted(sw.asked, key=sw.asked.__getitem__)[: self._cap // 2]:
                del sw.asked[addr]
                sw.answered.discard(addr)
        sw.asked[target] = pkt.ts
        recent = [a for a, ts in sw.asked.items() if pkt.ts - ts <= window]
        if sw.reported or len(recent) >= _SWEEPING:
            # already asking around: its SYN-443/ACK-80 companions are sweep probes
            self.intel.note_sweep(asker, sw.first, sw.last)
        if sw.reported or len(recent) < self.cfg.sweep_hosts:
            return []
        unanswered = sum(1 for a in recent if a not in sw.answered)
        if unanswered < self.cfg.sweep_unanswered_ratio * len(recent):
            return []
        sw.reported = True
        self.intel.note_sweep(asker, sw.first, sw.last)
        return [self._finding(asker, method, sw, recent, unanswered)]

    def _answer(self, asker: str, method: str, responder: str) -> None:
        sw = self.sweepers.get((asker, method))
        if sw is not None and responder in sw.asked:
            sw.answered.add(responder)

    def _finding(self, asker: str, method: str, sw: Sweeper, recent: list[str],
                 unanswered: int) -> Finding:
        times = sorted(sw.asked[a] for a in recent)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        duration = sw.last - sw.first
        subtype = SUBTYPES[1] if method == "icmp6" else SUBTYPES[0]
        evidence = ScanEvidence(
            type=method, timing="normal", direction="sweep", probes=sw.probes,
            failed=unanswered, succeeded=len(recent) - unanswered, ports=0, hosts=len(recent),
            duration_s=duration, rate_pps=sw.probes / duration if duration > 0 else 0.0,
            median_gap_s=median(gaps), ip_version=6 if method == "icmp6" else 4,
            samples=tuple(sw.samples))
        return Finding(
            kind=KIND, subtype=subtype,
            message=(f"{asker} {method} ping sweep: asked for {len(recent)} addresses, "
                     f"{unanswered} unanswered, in {duration:.1f}s"),
            identifier=f"scan:{asker}:{subtype}", severity=Severity.SEVERE,
            source=endpoint(asker, sw.mac),
            destinations=tuple(endpoint(a) for a in recent[:8]),
            transport="arp" if method == "arp" else method,
            first_seen=sw.first, last_seen=sw.last, count=sw.probes, evidence=evidence)
