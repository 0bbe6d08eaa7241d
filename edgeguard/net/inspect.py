"""frames -> filter -> decode -> detectors: the path shared by live capture and replay.

Live capture gets frames the kernel already filtered; ``replay`` runs the same cBPF
program over every frame of a file first (:func:`filter_spec` builds it from the same
policy keys). The detectors are the chain from :mod:`edgeguard.net.detect`;
:class:`Chain` is the part of it this module uses (tests substitute a recorder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from edgeguard.clock import Clock
from edgeguard.events import Finding
from edgeguard.net.bpfjit import Filter, compile_program
from edgeguard.net.config import NetworkConfig
from edgeguard.net.decode import DecodeCounters, decode
from edgeguard.net.detect import DetectorChain
from edgeguard.net.filter import FilterSpec, build_filter, power_of_two_floor
from edgeguard.net.packet import Packet

__all__ = ["Chain", "Inspector", "build_chain", "filter_spec"]


class Chain(Protocol):
    """What :class:`edgeguard.net.detect.chain.DetectorChain` offers."""

    def feed(self, pkt: Packet) -> list[Finding]: ...

    def tick(self, now: float | None = None) -> list[Finding]: ...

    def finish(self) -> list[Finding]: ...

    def counters(self) -> Mapping[str, int]: ...

    def forget(self, addresses: Iterable[str]) -> None: ...


def build_chain(cfg: NetworkConfig, clock: Clock) -> Chain:
    """The detector chain the policy configures."""
    return DetectorChain(cfg, clock)


def filter_spec(cfg: NetworkConfig) -> FilterSpec:
    """The filter's knobs from the policy (``filter_udp_sample`` and
    ``filter_shed_sample`` rounded down to a power of two, which the kernel program
    needs for its mask). Nothing is shed yet: :mod:`edgeguard.net.shed` adds targets."""
    lo = min(cfg.filter_opening_min, cfg.filter_opening_max)
    return FilterSpec(snap_length=cfg.snap_length, small_udp=cfg.filter_small_udp,
                      mse_min=lo, mse_max=max(cfg.filter_opening_min, cfg.filter_opening_max),
                      udp_sample=power_of_two_floor(cfg.filter_udp_sample),
                      shed_sample=power_of_two_floor(cfg.filter_shed_sample))


class Inspector:
    """Counts, filters (when asked), decodes and feeds one frame at a time."""

    def __init__(self, chain: Chain, keep: Filter | None = None) -> None:
        self.chain = chain
        self.keep = keep
        self.decode_counters = DecodeCounters()
        self.frames = 0
        self.filtered_out = 0

    @classmethod
    def for_replay(cls, cfg: NetworkConfig, chain: Chain) -> Inspector:
        return cls(chain, compile_program(build_filter(filter_spec(cfg))))

    def frame(self, data: bytes, ts: float, wire_len: int,
              vlan: int | None = None) -> list[Finding]:
        """``vlan``: the tag the kernel stripped from the frame (live capture only)."""
        pkt = self.packet(data, ts, wire_len, vlan)
        return [] if pkt is None else self.chain.feed(pkt)

    def packet(self, data: bytes, ts: float, wire_len: int,
               vlan: int | None = None) -> Packet | None:
        """Count, filter and decode one frame; None when the filter drops it or it
        cannot be decoded (``replay`` feeds the packets to the chain in batches)."""
        self.frames += 1
        keep = self.keep
        if keep is not None:
            snap = keep(data, wire_len)
            if not snap:
                self.filtered_out += 1
                return None
            if snap < len(data):
                data = data[:snap]
        pkt = decode(data, ts, wire_len, self.decode_counters)
        if pkt is not None and vlan is not None and pkt.vlan is None:
            pkt.vlan = vlan
        return pkt

    def counters(self) -> dict[str, int]:
        d = self.decode_counters
        out = {"frames": self.frames, "filtered_out": self.filtered_out,
               "decoded": d.decoded, "malformed": d.malformed, "not_ip": d.not_ip,
               "fragments": d.fragments}
        out.update(self.chain.counters())
        return out
