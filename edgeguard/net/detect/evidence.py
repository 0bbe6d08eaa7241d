"""The evidence each detector attaches to its findings, rendered as ECS-dotted fields.

One frozen dataclass per detector family; ``ecs_fields`` names every field under
``edgeguard.<family>.*`` so audit records and ``replay --json`` share one vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import Scalar

__all__ = ["ArpEvidence", "BitTorrentEvidence", "FloodEvidence", "ScanEvidence"]


def _clean(fields: dict[str, Scalar]) -> dict[str, Scalar]:
    """Drop unset (None / empty tuple) values so records stay small."""
    return {k: v for k, v in fields.items() if v is not None and v != ()}


@dataclass(frozen=True, slots=True)
class ScanEvidence:
    """What a scan looked like. ``type`` is the probe type (syn, connect, fin, null,
    xmas, ack, maimon, udp, icmp, arp); ``timing`` normal | slow | masscan-rate."""

    type: str
    timing: str
    direction: str  # vertical | horizontal | mixed | sweep
    probes: int
    failed: int
    succeeded: int
    ports: int
    hosts: int
    duration_s: float
    rate_pps: float
    median_gap_s: float
    ip_version: int
    trw_log10_ratio: float | None = None
    decoys: tuple[str, ...] = ()
    summary: bool = False
    samples: tuple[str, ...] = ()

    def ecs_fields(self) -> Mapping[str, Scalar]:
        p = "edgeguard.scan."
        return _clean({
            p + "type": self.type, p + "timing": self.timing, p + "direction": self.direction,
            p + "probes": self.probes, p + "failed_contacts": self.failed,
            p + "successful_contacts": self.succeeded, p + "distinct_ports": self.ports,
            p + "distinct_hosts": self.hosts, p + "duration_s": round(self.duration_s, 3),
            p + "rate_pps": round(self.rate_pps, 1),
            p + "median_gap_s": round(self.median_gap_s, 3), p + "ip_version": self.ip_version,
            p + "trw_log10_ratio": (None if self.trw_log10_ratio is None
                                    else round(self.trw_log10_ratio, 2)),
            p + "decoys": self.decoys, p + "summary": self.summary, p + "samples": self.samples,
        })


@dataclass(frozen=True, slots=True)
class BitTorrentEvidence:
    """``signal`` is the subtype that fired; ``role`` peer | tracker | client (a
    .torrent download). ``confidence`` is set for inferred (encrypted) findings."""

    signal: str
    role: str
    peers: int
    packets: int
    port: int | None = None
    info_hash: str | None = None
    confidence: float | None = None
    host_evidence: tuple[str, ...] = ()
    opening_sizes: tuple[int, ...] = ()
    samples: tuple[str, ...] = ()

    def ecs_fields(self) -> Mapping[str, Scalar]:
        p = "edgeguard.bittorrent."
        return _clean({
            p + "signal": self.signal, p + "role": self.role, p + "peers": self.peers,
            p + "packets": self.packets, p + "port": self.port, p + "info_hash": self.info_hash,
            p + "confidence": None if self.confidence is None else round(self.confidence, 2),
            p + "host_evidence": self.host_evidence, p + "opening_sizes": self.opening_sizes,
            p + "samples": self.samples,
        })


@dataclass(frozen=True, slots=True)
class ArpEvidence:
    """An ARP claim that contradicts what the LAN knows."""

    claimed_ips: tuple[str, ...]
    genuine_macs: tuple[str, ...]
    victims: tuple[str, ...]
    replies: int
    unsolicited: int
    gratuitous: int
    forged_sender: int
    samples: tuple[str, ...] = ()

    def ecs_fields(self) -> Mapping[str, Scalar]:
        p = "edgeguard.arp."
        return _clean({
            p + "claimed_ips": self.claimed_ips, p + "genuine_macs": self.genuine_macs,
            p + "victims": self.victims, p + "replies": self.replies,
            p + "unsolicited_replies": self.unsolicited, p + "gratuitous": self.gratuitous,
            p + "forged_sender_replies": self.forged_sender, p + "samples": self.samples,
        })


@dataclass(frozen=True, slots=True)
class FloodEvidence:
    """A rate toward one destination: ``rate_pps`` is the peak over ``window_s``."""

    rate_pps: float
    threshold_pps: float
    window_s: float
    packets: int
    duration_s: float
    dst_ports: tuple[int, ...]
    distinct_sources: int
    spoofed: bool
    ended: bool = False
    samples: tuple[str, ...] = ()

    def ecs_fields(self) -> Mapping[str, Scalar]:
        p = "edgeguard.flood."
        return _clean({
            p + "rate_pps": round(self.rate_pps, 1), p + "threshold_pps": self.threshold_pps,
            p + "window_s": self.window_s, p + "packets": self.packets,
            p + "duration_s": round(self.duration_s, 3), p + "dst_ports": self.dst_ports,
            p + "distinct_sources": self.distinct_sources, p + "spoofed": self.spoofed,
            p + "ended": self.ended, p + "samples": self.samples,
        })
