"""The detector contract: what capture and ``replay`` call, and what detectors promise.

A detector is fed the *kernel-prefiltered* packet stream (TCP SYNs and odd-flag
probes, RSTs, ICMP, ARP, the first payload bytes of flows, P2P-shaped UDP; see
:mod:`edgeguard.net.packet`). It must never depend on seeing bulk established traffic.

Time: every window is measured on packet time (``Packet.ts``, epoch seconds), so a
replayed capture gives the same findings as the live run. ``tick(now)`` is called with
the same time base (the live worker passes ``clock.now()``; replay passes the last
packet's time and, at the end, ``DetectorChain.finish``) so time-driven findings (a
slow scan crossing its threshold, a flood ending) come out even when no packet arrives.

Detectors never act and never suppress repeats (the decision engine does that by
``Finding.identifier``); they do keep every table bounded and count evictions. What
they keep per source (a scan reported once per source history, a flood once per
episode) is dropped by ``forget`` when an operator unblocks that source.

A detector that only reads some packets may say which in a ``wants`` attribute (a set
of :data:`~edgeguard.net.packet.ARP` and IP protocol numbers; the packet classes live
in :mod:`edgeguard.net.packet`, below every detector): the chain
(:mod:`edgeguard.net.detect.chain`, fed by :mod:`edgeguard.net.detect.registry`)
routes each packet once, by its class, to the detectors that want it, instead of
calling every detector to have most of them return at once. A detector without
``wants`` is fed every packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from edgeguard.events import Finding
from edgeguard.net.packet import ARP, Packet, PacketClass

__all__ = ["ARP", "Detector", "PacketClass", "ShedTarget", "Sheds", "wanted_by"]

#: a flood the kernel filter may sample: (IPv4 destination, "syn" | "udp")
ShedTarget = tuple[str, str]


class Detector(Protocol):
    """One detector. All three methods must never raise on any packet sequence."""

    #: Short name used as the prefix of its counters ("scan", "bittorrent", ...).
    name: str
    @property
    def wants(self) -> frozenset[PacketClass] | None:
        """The packet classes it reads; ``None`` reads every packet."""

    def observe(self, pkt: Packet) -> list[Finding]:
        """Account one packet; return findings it completes (usually none)."""

    def tick(self, now: float) -> list[Finding]:
        """Advance time to ``now`` (packet time base): expire state, emit time-driven
        findings (slow scans, floods that ended)."""

    def counters(self) -> Mapping[str, int]:
        """Counters for ``edgeguard status``: packets seen, table sizes, evictions."""

    def forget(self, address: str) -> None:
        """Drop every per-source state kept for ``address`` (IP text as packets carry
        it, or a lower-case MAC): an operator unblocked it (``net unblock``), so its
        next offence is detected afresh, not taken for the one already reported."""


def wanted_by(det: Detector, cls: PacketClass) -> bool:
    """Whether ``det`` reads packets of class ``cls`` (see ``wants`` above)."""
    return det.wants is None or cls in det.wants


@runtime_checkable
class Sheds(Protocol):
    """A detector that asks the kernel filter to sample floods in progress
    (:mod:`edgeguard.net.shed`): the flood detector."""

    def shed_wanted(self) -> frozenset[ShedTarget]:
        """The floods the kernel should sample now."""

    def shed_applied(self, targets: frozenset[ShedTarget], since: float) -> None:
        """The kernel samples ``targets`` from ``since`` on (count each packet N times)."""
