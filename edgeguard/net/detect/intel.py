"""What one detector learns that another needs: BitTorrent hosts and ping sweepers.

The scan detector must not call a BitTorrent host's peer fan-out a scan, and the
encrypted-BitTorrent inference needs to know a host already did DHT/uTP/tracker/LSD;
only the BitTorrent detector writes that table. A ping sweep off the local link (nmap
``-sn``) also sends a TCP SYN to 443 and an ACK to 80 of every address: those are part
of the sweep the sweep detector reports, not a separate SYN scan. Bounded like every
table.
"""

from __future__ import annotations

from edgeguard.net.detect.common import BoundedTable

__all__ = ["HostIntel"]


class HostIntel:
    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl = ttl
        #: ip -> {signal: last time seen}
        self.bittorrent: BoundedTable[str, dict[str, float]] = BoundedTable(cap)
        #: ip -> (first, last) time it was seen sweeping
        self.sweepers: BoundedTable[str, tuple[float, float]] = BoundedTable(cap)

    def note_sweep(self, ip: str, first: float, last: float) -> None:
        self.sweepers.put(ip, (first, last))

    def is_sweeping(self, ip: str, ts: float) -> bool:
        """``ip`` was sweeping around ``ts`` (within the evidence TTL)."""
        seen = self.sweepers.get(ip)
        return seen is not None and seen[0] - self.ttl <= ts <= seen[1] + self.ttl

    def note_bittorrent(self, ip: str, signal: str, ts: float) -> None:
        if not ip:
            return
        signals = self.bittorrent.touch(ip)
        if signals is None:
            signals = {}
            self.bittorrent.put(ip, signals)
        signals[signal] = max(ts, signals.get(signal, ts))

    def bittorrent_signals(self, ip: str, now: float) -> tuple[str, ...]:
        """The BitTorrent signals ``ip`` showed within the evidence TTL, sorted."""
        signals = self.bittorrent.get(ip)
        if not signals:
            return ()
        return tuple(sorted(s for s, ts in signals.items() if now - ts <= self.ttl))

    def is_bittorrent(self, ip: str, now: float) -> bool:
        return bool(self.bittorrent_signals(ip, now))
