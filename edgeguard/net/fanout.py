"""Several capture workers on one interface, each owning a share of the addresses.

A scan, a sweep, a flood or BitTorrent fan-out is an aggregate over *one* address: the
scanner (all its probes and every answer to them), the flood's target, the peer. The
kernel's ``PACKET_FANOUT_HASH`` keeps a *flow* on one worker, but a scan is many flows,
so each worker used to see a share of every scan. No stateless choice of one worker per
packet can keep every address's contacts together (the probe ``S -> D1`` must reach the
owner of ``S`` if ``S`` is the scanner, and the owner of ``D1`` if ``D1`` is), so each
of ``N`` workers instead opens its own socket (no fanout group) whose kernel filter
starts with an *ownership* test: a frame passes on to the capture filter when its IPv4
or IPv6 source or destination address hashes to this worker (:func:`owner_of`: the low
32 bits of the address, multiplied by a Fibonacci constant, bits 16-31, modulo ``N``),
so a frame between two addresses of different owners reaches both. Every address's
traffic, in both directions, is then whole in exactly one worker, and that worker
alone reports findings about it (:func:`finding_owner`): the actor for scans, sweeps
and BitTorrent, the target for floods. ARP (low rate; spoofing claims are grouped by
MAC, not by address) reaches every worker and ARP-spoofing findings are reported by
worker 0. Frames that are neither IP nor ARP go on to the capture filter (which drops
them).

What it costs: a frame whose two addresses have different owners is read twice, so
``N`` workers each read about ``(2N - 1) / N**2`` of the frames the capture filter
passes (2: 75 %, 4: 44 %, 8: 23 %), not ``1 / N``. See docs/network-capture.md,
"Multiple workers".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from edgeguard.events import Finding
from edgeguard.net.bpf import (
    SKF_AD_PROTOCOL,
    Insn,
    Program,
    assemble,
    jeq,
    label,
    ld,
    ldx,
    op,
    ret,
)
from edgeguard.net.detect.arp import KIND as ARP_SPOOF
from edgeguard.net.detect.flood import KIND as FLOOD
from edgeguard.net.filter import FilterSpec, filter_source

__all__ = ["MAX_WORKERS", "Share", "finding_owner", "owner_of", "share_filter",
           "share_prefix"]

#: Upper bound of ``network.capture_workers`` (the policy validates 1-16).
MAX_WORKERS: Final = 16
#: Knuth's multiplicative hash: 2**32 / golden ratio (odd, so a bijection mod 2**32).
_MULT: Final = 0x9E3779B1
_U32: Final = 0xFFFFFFFF
# offsets of the addresses' low 32 bits from the network header
_V4_SRC, _V4_DST = 12, 16
_V6_SRC, _V6_DST = 20, 36


@dataclass(frozen=True, slots=True)
class Share:
    """Worker ``index`` of ``count`` on one interface."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_WORKERS or not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index} of {self.count}: out of range")

    def owns(self, finding: Finding) -> bool:
        """Whether this worker reports ``finding`` (it alone saw all of its traffic)."""
        return finding_owner(finding, self.count) == self.index


def owner_of(address: int, count: int) -> int:
    """The worker that owns an address, given as the integer of its low 32 bits: the
    same arithmetic as the kernel program (32-bit multiply, shift, modulo)."""
    return ((((address & _U32) * _MULT) & _U32) >> 16) % count


def _address_key(text: str) -> int:
    return int(ipaddress.ip_address(text)) & _U32


def finding_owner(finding: Finding, count: int) -> int:
    """The worker whose share holds the address ``finding`` is about: the target of a
    flood, worker 0 for ARP spoofing, otherwise the actor's address (the first
    destination when the actor is known by its MAC only)."""
    if finding.kind == ARP_SPOOF:
        return 0
    source_ip = finding.source.ip if finding.source is not None else None
    target = finding.destinations[0].ip if finding.destinations else None
    key = target if finding.kind == FLOOD else source_ip or target
    return owner_of(_address_key(key), count) if key else 0


def _owned(offset: int, share: Share, tag: str) -> list[Insn]:
    """A = the address word at X + offset; on to ``share_ok`` when it is ours."""
    return [ld("w", ind=offset), op("mul", _MULT), op("rsh", 16), op("mod", share.count),
            jeq(share.index, "share_ok", f"share_{tag}_no"), label(f"share_{tag}_no")]


def share_prefix(share: Share, *, cooked: bool = False) -> list[Insn]:
    """Instructions that end the program with 0 (drop) unless the frame belongs to
    ``share``, and otherwise continue at the end of the prefix with A = X = 0 (as a
    program starts)."""
    # A = the ethertype, X = the network header's offset (as the capture filter has them)
    link = [ld(ancillary=SKF_AD_PROTOCOL), ldx(imm=0)] if cooked else [
        ld("h", abs_=12), ldx(imm=14), jeq(0x8100, "share_vlan", "share_ad"),
        label("share_ad"), jeq(0x88A8, "share_vlan", "share_untagged"),
        label("share_vlan"), ld("h", abs_=16), ldx(imm=18), label("share_untagged")]
    link += [jeq(0x0800, "share_v4", "share_not_v4"), label("share_not_v4"),
             jeq(0x86DD, "share_v6", "share_ok")]  # ARP and the rest: every worker
    return [
        *link,
        label("share_v4"),
        *_owned(_V4_SRC, share, "v4src"), *_owned(_V4_DST, share, "v4dst"), ret(0),
        label("share_v6"),
        *_owned(_V6_SRC, share, "v6src"), *_owned(_V6_DST, share, "v6dst"), ret(0),
        label("share_ok"), ld(imm=0), ldx(imm=0),
    ]


def share_filter(spec: FilterSpec, share: Share | None) -> Program:
    """The capture filter for ``spec``, behind the ownership test of ``share`` (none:
    the filter alone, one worker owns everything)."""
    body = filter_source(spec)
    if share is None or share.count == 1:
        return assemble(body)
    return assemble([*share_prefix(share, cooked=spec.cooked), *body])
