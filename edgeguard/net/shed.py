"""Load shedding: a flood in progress is sampled by the kernel, not read in full.

A SYN or UDP flood at line rate is mostly the same packet again; reading every one in
Python costs the worker everything else it should see (a scan elsewhere, a BitTorrent
handshake) and overruns the ring, i.e. kernel drops. Once the flood detector reports a
flood toward an IPv4 address, :class:`Shedder` rebuilds the capture filter with that
address as a shed target: the kernel then passes 1 in ``filter_shed_sample`` of the
flood's packets (SYNs without ACK, or UDP, toward that address) and drops the rest
before they reach the ring; the detector counts each one it still sees as
``filter_shed_sample``, so the flood's rate, its end and its summary stay true. When the
flood ends the address leaves the filter again. Only the live worker sheds; ``replay``
reads every packet (same findings as before, nothing to fall behind).

What it costs: while an address is shed, a scan *of that address* is seen at the same
1-in-N sample (still reported when it probes enough ports), and answers from it are not
affected. IPv6 destinations are not shed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from edgeguard.net.capture import attach_filter
from edgeguard.net.detect.flood import ShedTarget
from edgeguard.net.fanout import Share, share_filter
from edgeguard.net.filter import FilterSpec

__all__ = ["ShedSource", "Shedder", "spec_with"]


class ShedSource(Protocol):
    """What the detector chain offers for shedding (the flood detector behind it).
    Checked statically only (no runtime-checkable protocol: mypyc compiles this)."""

    def shed_wanted(self) -> frozenset[ShedTarget]: ...

    def shed_applied(self, targets: frozenset[ShedTarget], since: float) -> None: ...


def _addr(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def spec_with(base: FilterSpec, targets: frozenset[ShedTarget]) -> FilterSpec:
    """``base`` with ``targets`` shed (sorted, so the same set builds the same program)."""
    syn = tuple(sorted(_addr(dst) for dst, kind in targets if kind == "syn"))
    udp = tuple(sorted(_addr(dst) for dst, kind in targets if kind == "udp"))
    return replace(base, shed_syn=syn, shed_udp=udp)


class Shedder:
    """Keeps one capture socket's filter in step with the floods in progress."""

    def __init__(self, sock: socket.socket, base: FilterSpec,
                 now: Callable[[], float] = time.time, share: Share | None = None) -> None:
        self.sock = sock
        self.base = base
        self.share = share  # this worker's addresses (several workers on the interface)
        self.now = now
        self.current: frozenset[ShedTarget] = frozenset()
        self.swaps = 0
        self.errors = 0

    def rebase(self, base: FilterSpec, source: ShedSource | None) -> None:
        """A new policy: new filter knobs; the (new) detectors start with nothing shed."""
        self.base = base
        self.current = frozenset()
        attach_filter(self.sock, share_filter(base, self.share))
        if source is not None:
            source.shed_applied(frozenset(), self.now())

    def update(self, source: ShedSource | None) -> bool:
        """Swap the filter when the floods in progress changed; True when it did (never
        without a ``source``: a chain that cannot shed)."""
        if source is None:
            return False
        wanted = source.shed_wanted()
        if wanted == self.current:
            return False
        try:
            attach_filter(self.sock, share_filter(spec_with(self.base, wanted), self.share))
        except (OSError, ValueError):
            self.errors += 1  # the old filter stays: still correct, only slower
            return False
        # packets the kernel captures from now on are sampled; the ring may still hold
        # earlier ones, which the detector tells apart by their capture time
        source.shed_applied(wanted, self.now())
        self.current = wanted
        self.swaps += 1
        return True

    def counters(self) -> dict[str, int]:
        return {"shed_targets": len(self.current), "shed_swaps": self.swaps,
                "shed_errors": self.errors}
