"""Load shedding: a flood in progress is sampled in the kernel filter, counted true by
the flood detector, and let go of when it ends."""

from __future__ import annotations

import dataclasses
import itertools
import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from edgeguard.net import bpf
from edgeguard.net.bpfjit import compile_program
from edgeguard.net.detect.evidence import FloodEvidence
from edgeguard.net.detect.flood import FloodDetector
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.inspect import filter_spec
from edgeguard.net.packet import Packet
from edgeguard.net.shed import Shedder, spec_with
from tests.unit.net.detect.conftest import shipped_network

VICTIM, OTHER, ATTACKER = "10.9.0.12", "10.9.0.13", "10.9.0.46"
SHED = spec_with(FilterSpec(), frozenset({(VICTIM, "syn"), (VICTIM, "udp")}))
DRAWS = 1024


def _eth(l3: object) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:46", dst="02:00:00:00:00:12") / l3)


def _kept(spec: FilterSpec, frame: bytes) -> tuple[int, int]:
    """(interpreter, translation) frames kept of DRAWS, with random draws 0, 1, 2, ..."""
    prog = build_filter(spec)
    draws = itertools.count()
    jit = compile_program(prog, rand=lambda: next(draws))
    by_interp = sum(bool(bpf.run(prog, frame, rand=lambda: next(draws)))
                    for _ in range(DRAWS))
    by_jit = sum(bool(jit(frame, len(frame))) for _ in range(DRAWS))
    return by_interp, by_jit


@pytest.mark.parametrize(("name", "frame", "kept"), [
    ("SYN toward the shed address", _eth(IP(src=ATTACKER, dst=VICTIM) / TCP(flags="S")),
     DRAWS // 16),
    ("UDP toward the shed address, even small",
     _eth(IP(src=ATTACKER, dst=VICTIM) / UDP(dport=53) / b"x"), DRAWS // 16),
    ("SYN toward another address", _eth(IP(src=ATTACKER, dst=OTHER) / TCP(flags="S")), DRAWS),
    ("the victim's SYN-ACK", _eth(IP(src=VICTIM, dst=ATTACKER) / TCP(flags="SA")),
     DRAWS // 16),
    ("a RST toward the victim", _eth(IP(src=ATTACKER, dst=VICTIM) / TCP(flags="R")),
     DRAWS // 16),
    ("the victim's UDP answer", _eth(IP(src=VICTIM, dst=ATTACKER) / UDP(sport=53) / b"x"),
     DRAWS // 16),
    ("a FIN probe toward the victim", _eth(IP(src=ATTACKER, dst=VICTIM) / TCP(flags="F")),
     DRAWS),
    ("an ACK probe toward the victim", _eth(IP(src=ATTACKER, dst=VICTIM) / TCP(flags="A")),
     DRAWS),
    ("a BitTorrent handshake toward the victim",
     _eth(IP(src=ATTACKER, dst=VICTIM) / TCP(flags="PA") / b"\x13BitTorrent protocol"), DRAWS),
    ("ICMP toward the victim", _eth(IP(src=ATTACKER, dst=VICTIM) / ICMP()), DRAWS),
    ("an IPv6 SYN (not shed)", _eth(IPv6(src="fd00::46", dst="fd00::12") / TCP(flags="S")),
     DRAWS),
])
def test_the_shed_filter_samples_only_the_flood(name: str, frame: bytes, kept: int) -> None:
    assert _kept(SHED, frame) == (kept, kept), name


def test_nothing_shed_builds_the_unshed_program() -> None:
    assert build_filter(spec_with(FilterSpec(), frozenset())).insns == build_filter().insns
    assert not FilterSpec(shed_sample=0, shed_syn=(1,)).shedding
    with pytest.raises(ValueError, match="shed_sample"):
        FilterSpec(shed_sample=12)


def test_the_kernel_accepts_the_shed_program() -> None:
    """SO_ATTACH_FILTER runs the kernel's checker (every scratch word stored before it is
    read on every path, jumps in range); a UDP socket needs no privilege."""
    many = frozenset({(f"10.9.{n // 250}.{n % 250 + 1}", kind)
                      for n in range(32) for kind in ("syn", "udp")})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        shedder = Shedder(sock, FilterSpec(), now=lambda: 5.0)
        source = _Source(many)
        assert shedder.update(source)
        assert source.applied == (many, 5.0)
        assert not shedder.update(source)  # unchanged: no swap
        source.wanted = frozenset()
        assert shedder.update(source)
        assert shedder.counters() == {"shed_targets": 0, "shed_swaps": 2, "shed_errors": 0}


@dataclasses.dataclass
class _Source:
    wanted: frozenset[tuple[str, str]]
    applied: tuple[frozenset[tuple[str, str]], float] | None = None

    def shed_wanted(self) -> frozenset[tuple[str, str]]:
        return self.wanted

    def shed_applied(self, targets: frozenset[tuple[str, str]], since: float) -> None:
        self.applied = (targets, since)


def _syn(ts: float, sport: int) -> Packet:
    return Packet(ts=ts, wire_len=60, src_mac="02:00:00:00:00:46", ip_version=4,
                  src_ip=ATTACKER, dst_ip=VICTIM, proto=6, sport=sport, dport=80,
                  tcp_flags=0x02)


def test_a_shed_flood_keeps_its_true_rate_and_ends() -> None:
    """2,000 SYNs/s for 4 s: the first half second read in full, then 1 in 16 (as the
    kernel would pass them). The finding's peak and packet count stay those of the real
    flood, the detector asks to stop shedding when it ends."""
    det = FloodDetector(shipped_network())
    rate, sample = 2000, det.shed_sample
    assert sample == 16
    found = []
    n = 0
    shed_from: float | None = None
    while n < rate * 4:
        ts = 1.0 + n / rate
        if shed_from is None or ts < shed_from or n % sample == 0:
            found += det.observe(_syn(ts, 1024 + n % 60000))
        if shed_from is None and found:
            assert det.shed_wanted() == {(VICTIM, "syn")}
            shed_from = ts + 0.5  # the kernel samples from a little later
            det.shed_applied(det.shed_wanted(), shed_from)
        n += 1
    assert [f.subtype for f in found] == ["syn-flood"]
    ended = det.tick(20.0)
    assert [f.subtype for f in ended] == ["syn-flood"]
    evidence = ended[0].evidence
    assert isinstance(evidence, FloodEvidence)
    assert 1800 <= evidence.rate_pps <= 2200
    assert abs(evidence.packets - rate * 4) <= sample
    assert det.shed_wanted() == frozenset()
    assert det.counters()["shed_weighted"] > 0


def test_replay_never_sheds() -> None:
    """Nothing applied: every packet counts once (replay reads them all)."""
    det = FloodDetector(shipped_network())
    for n in range(1000):
        det.observe(_syn(1.0 + n / 1000, 2000 + n))
    assert det.counters()["shed_weighted"] == 0
    assert det.counters()["shed_targets"] == 0


def test_shedding_off_in_the_policy() -> None:
    cfg = dataclasses.replace(shipped_network(), filter_shed_sample=1)
    det = FloodDetector(cfg)
    for n in range(1000):
        det.observe(_syn(1.0 + n / 1000, 2000 + n))
    assert any(st.active for _, st in det.rates.items())  # a flood, not shed
    assert det.shed_wanted() == frozenset()
    assert filter_spec(cfg).shed_sample == 1
    assert not spec_with(filter_spec(cfg), frozenset({(VICTIM, "syn")})).shedding
