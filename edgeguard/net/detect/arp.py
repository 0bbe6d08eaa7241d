"""ARP spoofing: claims that contradict what the LAN already knows. Actor = the MAC.

* reply poisoning: unsolicited replies "X is-at M2" while X's genuine MAC (learned
  from X's own requests or from replies to someone's request) is M1;
* one MAC claiming many addresses in unsolicited replies or gratuitous ARP (replies to
  requests, a host with many aliases answering for each, do not count);
* gratuitous-ARP storms from one MAC;
* any unsolicited claim about, or toward, a configured gateway counts at once.

Replies whose Ethernet source differs from the claimed MAC (arpspoof "restoring" the
real binding on exit) are counted as evidence against the Ethernet source.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeguard.events import Finding, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.common import BoundedTable, endpoint, summary
from edgeguard.net.detect.evidence import ArpEvidence
from edgeguard.net.packet import ARP, Packet, PacketClass

__all__ = ["KIND", "SUBTYPES", "ArpSpoofDetector"]

KIND = "arp-spoof"
SUBTYPES = ("arp-reply-poisoning", "arp-request-poisoning", "mac-claims-many-ips",
            "gratuitous-storm")

_ZERO_IPS = ("0.0.0.0", "")  # noqa: S104 (an ARP probe's sender, not a bind address)
_CAP = 64  # addresses / victims remembered per MAC


@dataclass(slots=True)
class Binding:
    mac: str
    ts: float


@dataclass(slots=True)
class Claimer:
    """What one MAC claimed."""

    first: float
    last: float
    own_ip: str = ""
    spoofed: dict[str, str] = field(default_factory=dict)  # ip -> genuine mac
    claimed: dict[str, float] = field(default_factory=dict)  # ip -> last claim
    victims: dict[str, None] = field(default_factory=dict)
    replies: int = 0
    unsolicited: int = 0
    poison: int = 0
    forged: int = 0
    gratuitous: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    reported: set[str] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)


class ArpSpoofDetector:
    name = "arp"
    # (set per instance: mypyc compiles class attributes with literal defaults only)

    def __init__(self, cfg: NetworkConfig) -> None:
        self.wants: frozenset[PacketClass] = frozenset({ARP})
        self.cfg = cfg.arp
        self.gateways = frozenset(str(ip) for ip in self.cfg.gateways)
        cap = self.cfg.max_entries
        self.bindings: BoundedTable[str, Binding] = BoundedTable(cap)
        # (asker ip, asked-for ip) -> ts; the first reply consumes it
        self.requests: BoundedTable[tuple[str, str], float] = BoundedTable(cap)
        self.claimers: BoundedTable[str, Claimer] = BoundedTable(cap)
        self.unconfirmed: BoundedTable[str, dict[str, int]] = BoundedTable(cap)
        self.n_packets = 0

    def observe(self, pkt: Packet) -> list[Finding]:
        arp = pkt.arp
        if arp is None:
            return []
        self.n_packets += 1
        ts, mac, ip = pkt.ts, arp.sender_mac, arp.sender_ip
        if ip in _ZERO_IPS or not mac:
            return []
        claimer = self._claimer(mac, ts)
        gratuitous = ip == arp.target_ip
        if arp.op == 1 and not gratuitous:
            return self._request(pkt, claimer)
        out: list[Finding] = []
        if pkt.src_mac and pkt.src_mac != mac:
            forger = self._claimer(pkt.src_mac, ts)
            forger.forged += 1
            self._sample(forger, pkt)
        if gratuitous:
            claimer.gratuitous.append(ts)
            while claimer.gratuitous and ts - claimer.gratuitous[0] > self.cfg.window:
                claimer.gratuitous.popleft()
            if len(claimer.gratuitous) >= self.cfg.gratuitous_storm:
                self._sample(claimer, pkt)
                out += self._report(mac, claimer, "gratuitous-storm")
        if arp.op != 2:
            if gratuitous:  # a gratuitous request claims the address like a reply
                self._claim(claimer, ip, ts)
                out += self._unsolicited(pkt, claimer) + self._many(mac, claimer)
            return out
        claimer.replies += 1
        asked = None if gratuitous else self.requests.pop((arp.target_ip, ip))
        solicited = asked is not None and ts - asked <= self.cfg.request_window
        if solicited and pkt.src_mac == mac and not gratuitous:
            # answering requests for its own addresses is what a host with aliases
            # (a server, a proxy-ARP router) does: not a claim toward many-ips
            return out + self._confirm(ip, mac, ts)
        self._claim(claimer, ip, ts)
        if not solicited:
            claimer.unsolicited += 1
            out += self._unsolicited(pkt, claimer)
        return out + self._many(mac, claimer)

    def tick(self, now: float) -> list[Finding]:
        while (old := self.bindings.oldest()) is not None and \
                now - old[1].ts > self.cfg.binding_ttl:
            self.bindings.pop(old[0])
        while (req := self.requests.oldest()) is not None and \
                now - req[1] > self.cfg.request_window:
            self.requests.pop(req[0])
        while (cl := self.claimers.oldest()) is not None and \
                now - cl[1].last > max(self.cfg.window, self.cfg.binding_ttl):
            self.claimers.pop(cl[0])
        return []

    def counters(self) -> Mapping[str, int]:
        return {
            "packets": self.n_packets, "bindings": len(self.bindings),
            "bindings_evicted": self.bindings.evicted, "claimers": len(self.claimers),
            "claimers_evicted": self.claimers.evicted, "requests": len(self.requests),
            "requests_evicted": self.requests.evicted,
        }

    def forget(self, address: str) -> None:
        """An operator unblocked ``address``: what the MAC (or the MAC owning that
        address) claimed and was reported for goes; the genuine bindings it contradicted
        stay (they are the victims' facts, not the claimer's)."""
        self.claimers.pop_where(lambda mac, cl: address in (mac, cl.own_ip))

    # -- internals ----------------------------------------------------------------------
    def _claimer(self, mac: str, ts: float) -> Claimer:
        claimer = self.claimers.touch(mac)
        if claimer is None:
            claimer = Claimer(first=ts, last=ts)
            self.claimers.put(mac, claimer)
        claimer.last = max(claimer.last, ts)
        return claimer

    def _claim(self, claimer: Claimer, ip: str, ts: float) -> None:
        if ip in claimer.claimed or len(claimer.claimed) < _CAP:
            claimer.claimed[ip] = ts

    def _request(self, pkt: Packet, claimer: Claimer) -> list[Finding]:
        """A request: the asker's own binding, unless it contradicts a known one.
        Caches learn from requests too, so a request as another host's address is a
        claim; it counts once that host shows it is still there (a moved address
        whose old owner is gone is not spoofing)."""
        assert pkt.arp is not None
        ip, mac = pkt.arp.sender_ip, pkt.arp.sender_mac
        self.requests.put((ip, pkt.arp.target_ip), pkt.ts)
        if pkt.src_mac != mac:
            return []
        genuine = self.bindings.get(ip)
        if genuine is None or genuine.mac == mac:
            claimer.own_ip = claimer.own_ip or ip
            return self._confirm(ip, mac, pkt.ts)
        self._claim(claimer, ip, pkt.ts)
        self._sample(claimer, pkt)
        self._pending_claim(ip, mac)
        return self._many(mac, claimer)

    def _pending_claim(self, ip: str, mac: str) -> None:
        pending = self.unconfirmed.touch(ip)
        if pending is None:
            pending = {}
            self.unconfirmed.put(ip, pending)
        if mac in pending or len(pending) < 8:
            pending[mac] = pending.get(mac, 0) + 1

    def _confirm(self, ip: str, mac: str, ts: float) -> list[Finding]:
        """``mac`` genuinely owns ``ip`` (its own request, or a solicited reply)."""
        self.bindings.put(ip, Binding(mac, ts))
        # claims made before the genuine owner was known (or showed it is still
        # there) now count
        out: list[Finding] = []
        earlier = self.unconfirmed.pop(ip)
        for other, count in (earlier or {}).items():
            claimer = self.claimers.get(other)
            if other == mac or claimer is None:
                continue
            claimer.poison += count
            claimer.spoofed[ip] = mac
            if claimer.poison >= self.cfg.poison_replies:
                out += self._report(other, claimer, "arp-reply-poisoning"
                                    if claimer.unsolicited else "arp-request-poisoning")
        return out

    def _unsolicited(self, pkt: Packet, claimer: Claimer) -> list[Finding]:
        assert pkt.arp is not None
        arp = pkt.arp
        ip, mac = arp.sender_ip, arp.sender_mac
        genuine = self.bindings.get(ip)
        toward_gateway = arp.target_ip in self.gateways or ip in self.gateways
        if genuine is not None and genuine.mac == mac:
            return []  # repeating the truth (or restoring it)
        if genuine is None and not toward_gateway:
            self._pending_claim(ip, mac)
            return []
        claimer.poison += self.cfg.poison_replies if toward_gateway else 1
        if len(claimer.spoofed) < _CAP:
            claimer.spoofed[ip] = genuine.mac if genuine is not None else ""
        if len(claimer.victims) < _CAP and arp.target_ip != ip:
            claimer.victims[arp.target_ip] = None
        self._sample(claimer, pkt)
        if claimer.poison >= self.cfg.poison_replies:
            return self._report(mac, claimer, "arp-reply-poisoning")
        return []

    def _many(self, mac: str, claimer: Claimer) -> list[Finding]:
        recent = [ip for ip, ts in claimer.claimed.items() if claimer.last - ts <= self.cfg.window]
        if len(recent) >= self.cfg.claims_ips:
            return self._report(mac, claimer, "mac-claims-many-ips")
        return []

    @staticmethod
    def _sample(claimer: Claimer, pkt: Packet) -> None:
        if len(claimer.samples) < 3:
            claimer.samples.append(summary(pkt))

    def _report(self, mac: str, claimer: Claimer, subtype: str) -> list[Finding]:
        if subtype in claimer.reported:
            return []
        claimer.reported.add(subtype)
        spoofed = tuple(claimer.spoofed) or tuple(claimer.claimed)
        what = {
            "arp-reply-poisoning": f"claims {', '.join(spoofed[:4])} in unsolicited replies",
            "arp-request-poisoning": f"claims {', '.join(spoofed[:4])} in its requests",
            "mac-claims-many-ips": f"claims {len(claimer.claimed)} addresses",
            "gratuitous-storm": f"sent {len(claimer.gratuitous)} gratuitous ARPs",
        }[subtype]
        victims = tuple(claimer.victims)
        return [Finding(
            kind=KIND, subtype=subtype,
            message=f"{mac} {what}" + (f" to {', '.join(victims[:4])}" if victims else ""),
            identifier=f"arp-spoof:{mac}:{subtype}", severity=Severity.SEVERE,
            source=endpoint(claimer.own_ip, mac),
            destinations=tuple(endpoint(v) for v in victims),
            transport="arp", first_seen=claimer.first, last_seen=claimer.last,
            count=claimer.replies + len(claimer.gratuitous),
            evidence=ArpEvidence(
                claimed_ips=spoofed,
                genuine_macs=tuple(sorted(set(claimer.spoofed.values()) - {""})),
                victims=victims, replies=claimer.replies, unsolicited=claimer.unsolicited,
                gratuitous=len(claimer.gratuitous), forged_sender=claimer.forged,
                samples=tuple(claimer.samples)))]
