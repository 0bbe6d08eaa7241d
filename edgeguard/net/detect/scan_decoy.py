"""Decoys (nmap ``-D``): one MAC sending every probe from several source addresses.

Each probe is remembered by (MAC, destination, port) with the address that sent it;
a second address sending the same probe through the same MAC within
``scan.decoy_window`` links both into that MAC's group. A source is a decoy member
only when co-sending is systematic (at least half its contacts): clients behind a
router share its MAC but coincide only now and then. The real scanner is the address
the MAC claims for itself in ARP, else the one that tears down the target's SYN-ACKs
from that MAC (live hosts used as decoys tear them down from their own MAC).
"""

from __future__ import annotations

from edgeguard.net.detect.common import BoundedTable
from edgeguard.net.detect.scan_state import SourceState
from edgeguard.net.packet import Packet

__all__ = ["DecoyTracker"]

#: Minimum links (probes seen from two addresses of one MAC) to call it decoys.
_DECOY_LINKS = 3
#: Addresses remembered per MAC group.
_GROUP_CAP = 64


class DecoyTracker:
    def __init__(self, window: float, cap: int, owners_cap: int) -> None:
        self.window = window
        # (mac, destination, port) -> (source, ts) of the last probe
        self.last_probe: BoundedTable[tuple[str, str, int], tuple[str, float]] = BoundedTable(
            cap)
        # mac -> {source address: links}
        self.groups: BoundedTable[str, dict[str, int]] = BoundedTable(4096)
        # mac -> the address it claims for itself in ARP
        self.owners: BoundedTable[str, str] = BoundedTable(owners_cap)

    def note_owner(self, mac: str, ip: str) -> None:
        self.owners.put(mac, ip)

    def note_probe(self, pkt: Packet, state: SourceState,
                   sources: BoundedTable[str, SourceState]) -> None:
        mac, src, ts = pkt.src_mac, pkt.src_ip, pkt.ts
        if not mac:
            return
        prev = self.last_probe.swap((mac, pkt.dst_ip, pkt.dport), (src, ts))
        if prev is None:
            return
        other_ip, other_ts = prev
        if other_ip == src or ts - other_ts > self.window:
            return
        state.co_sent += 1
        other = sources.get(other_ip)
        if other is not None:
            other.co_sent += 1
        group = self.groups.touch(mac)
        if group is None:
            group = {}
            self.groups.put(mac, group)
        for ip in (other_ip, src):
            if ip in group:
                group[ip] += 1
            elif len(group) < _GROUP_CAP:
                group[ip] = 1

    def actor(self, state: SourceState, sources: BoundedTable[str, SourceState],
              ) -> tuple[str | None, tuple[str, ...]] | None:
        """(real address or None, decoys) when ``state`` is one of a MAC's decoys."""
        group = self.groups.get(state.mac)
        if group is None or state.ip not in group or sum(group.values()) < _DECOY_LINKS:
            return None
        if state.co_sent * 2 < state.distinct_contacts():
            return None  # coincidences (clients behind a router), not systematic decoys
        owner = self.owners.get(state.mac)
        real: str | None = owner if owner in group else None
        if real is None:
            best = 0
            for ip in group:
                other = sources.get(ip)
                if other is None or other.foreign_mac:
                    continue
                reacted = other.half_open + other.completed
                if reacted > best:
                    real, best = ip, reacted
        decoys = tuple(sorted(ip for ip in group if ip != real))
        return real, decoys
