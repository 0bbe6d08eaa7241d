"""All detectors behind one ``feed``: routing by packet class, allowlist, ticks, counters.

The registry (:mod:`edgeguard.net.detect.registry`) builds the detectors the policy
enables; this module only runs them, so the contract (:mod:`edgeguard.net.detect.base`)
and the packet classes (:mod:`edgeguard.net.packet`) stay below every detector and no
module imports back up the chain.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable

from edgeguard.clock import Clock
from edgeguard.events import Finding
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.base import Detector, Sheds, ShedTarget, wanted_by
from edgeguard.net.detect.registry import detectors_for
from edgeguard.net.packet import ARP, Packet, PacketClass

__all__ = ["DetectorChain", "build_detectors"]

#: A detector's ``observe``, bound.
Observe = Callable[[Packet], list[Finding]]

#: Remembered allowlist answers (address text -> allowed); the oldest are forgotten.
_ALLOW_CACHE = 4096


def build_detectors(cfg: NetworkConfig, clock: Clock) -> list[Detector]:
    """The detectors the ``network:`` policy section enables, configured from it."""
    return detectors_for(cfg, clock)


class DetectorChain:
    """All detectors behind one ``feed``: allowlist, periodic ``tick``, counters.

    The capture worker and ``replay`` use this rather than looping over detectors
    themselves, so allowlisting and tick scheduling happen in one place.
    """

    def __init__(self, cfg: NetworkConfig, clock: Clock,
                 detectors: Iterable[Detector] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.detectors: list[Detector] = (
            list(detectors) if detectors is not None else build_detectors(cfg, clock))
        self._allow_nets = cfg.allowlist
        self._allow_cache: OrderedDict[str, bool] = OrderedDict()
        self._tick_every = float(cfg.detect.tick_interval)
        self._next_tick: float | None = None
        self._last_ts = 0.0
        #: packet class -> the ``observe`` of the detectors that want it, in chain order
        #: (filled lazily; bound once: a call through the Protocol looks the method up)
        self._routes: dict[PacketClass, tuple[Observe, ...]] = {}
        self.packets = 0
        self.allowlisted_findings = 0

    def allowed(self, address: str | None) -> bool:
        """True when ``address`` (IP text) is inside ``network.allowlist``."""
        if not address or not self._allow_nets:
            return False
        hit = self._allow_cache.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            hit = any(ip in net for net in self._allow_nets)
            self._allow_cache[address] = hit
            if len(self._allow_cache) > _ALLOW_CACHE:
                self._allow_cache.popitem(last=False)
        return hit

    def _keep(self, findings: list[Finding]) -> list[Finding]:
        if not self._allow_nets or not findings:
            return findings
        kept = [f for f in findings if not (f.source is not None and self.allowed(f.source.ip))]
        self.allowlisted_findings += len(findings) - len(kept)
        return kept

    def feed(self, pkt: Packet) -> list[Finding]:
        """Run one packet through the detectors that want it (and ``tick`` when due)."""
        self.packets += 1
        ts = pkt.ts
        last = self._last_ts  # (per packet: a comparison, not a max() call)
        self._last_ts = ts if ts > last else last
        out: list[Finding] = []
        next_tick = self._next_tick
        if next_tick is None:
            self._next_tick = ts + self._tick_every
        elif ts >= next_tick:
            out.extend(self.tick(ts))
        # Every packet is inspected, allowlisted or not: an allowlisted server's RSTs
        # and SYN-ACKs are the answers that make someone else's scan visible, and a
        # spoofer claiming an allowlisted address (the gateway) is the attack itself.
        # Only findings whose actor is allowlisted are dropped.
        cls = ARP if pkt.arp is not None else pkt.proto
        route = self._routes.get(cls)
        if route is None:
            route = self._routes[cls] = tuple(
                d.observe for d in self.detectors if wanted_by(d, cls))
        for observe in route:
            found = observe(pkt)
            if found:
                out.extend(found)
        return self._keep(out) if out else out

    def tick(self, now: float | None = None) -> list[Finding]:
        """Advance every detector to ``now`` (default: the clock's wall time)."""
        when = self.clock.now() if now is None else now
        self._next_tick = when + self._tick_every
        out: list[Finding] = []
        for det in self.detectors:
            out.extend(det.tick(when))
        return self._keep(out)

    def finish(self) -> list[Finding]:
        """End of a capture file: let every window close (floods end, slow scans
        that already crossed their thresholds report)."""
        return self.tick(self._last_ts + float(self.cfg.detect.flush_horizon))

    def run(self, packets: Iterable[Packet]) -> list[Finding]:
        """Feed a whole packet sequence and finish (replay and tests)."""
        out: list[Finding] = []
        for pkt in packets:
            out.extend(self.feed(pkt))
        out.extend(self.finish())
        return out

    def shed_wanted(self) -> frozenset[ShedTarget]:
        """Flood destinations the kernel should sample (see :mod:`edgeguard.net.shed`)."""
        wanted: frozenset[ShedTarget] = frozenset()
        for det in self.detectors:
            if isinstance(det, Sheds):
                wanted |= det.shed_wanted()
        return wanted

    def shed_applied(self, targets: frozenset[ShedTarget], since: float) -> None:
        for det in self.detectors:
            if isinstance(det, Sheds):
                det.shed_applied(targets, since)

    def forget(self, addresses: Iterable[str]) -> None:
        """Every detector drops what it keeps about each of ``addresses`` (an operator
        unblocked them: the next offence is new, see :meth:`Detector.forget`)."""
        for address in addresses:
            for det in self.detectors:
                det.forget(address)

    def counters(self) -> dict[str, int]:
        out = {
            "detect.packets": self.packets,
            "detect.allowlisted_findings": self.allowlisted_findings,
        }
        for det in self.detectors:
            for key, value in det.counters().items():
                out[f"{det.name}.{key}"] = value
        return out
