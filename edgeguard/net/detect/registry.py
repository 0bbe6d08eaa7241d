"""Which detectors exist and how the ``network:`` policy section builds them."""

from __future__ import annotations

from edgeguard.clock import Clock
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.arp import ArpSpoofDetector
from edgeguard.net.detect.base import Detector
from edgeguard.net.detect.bittorrent import BitTorrentDetector
from edgeguard.net.detect.flood import FloodDetector
from edgeguard.net.detect.intel import HostIntel
from edgeguard.net.detect.scan import ScanDetector
from edgeguard.net.detect.sweep import SweepDetector

__all__ = ["detectors_for"]


def detectors_for(cfg: NetworkConfig, clock: Clock) -> list[Detector]:
    """One instance of every detector, configured from ``cfg``, sharing one
    :class:`HostIntel` (BitTorrent hosts are exempt from scan fan-out)."""
    del clock  # detectors run on packet time; the chain uses the clock for ticks
    intel = HostIntel(cfg.bittorrent.evidence_ttl, cfg.bittorrent.max_hosts)
    return [BitTorrentDetector(cfg, intel), ScanDetector(cfg, intel), ArpSpoofDetector(cfg),
            FloodDetector(cfg), SweepDetector(cfg, intel)]
