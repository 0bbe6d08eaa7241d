"""Reassembly of a BitTorrent handshake split across TCP segments (bt_handshake.py),
alone and inside the BitTorrent detector."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from conftest import shipped_network

from edgeguard.events import Finding
from edgeguard.net.config import BitTorrentThresholds
from edgeguard.net.detect.bittorrent import BitTorrentDetector
from edgeguard.net.detect.bt_handshake import HANDSHAKE_LEN, HandshakeAssembler, anchor
from edgeguard.net.detect.evidence import BitTorrentEvidence
from edgeguard.net.detect.intel import HostIntel
from edgeguard.net.packet import Packet

INFO_HASH = bytes(range(0xA0, 0xB4))
HS = b"\x13BitTorrent protocol" + bytes.fromhex("0000000000100005") + INFO_HASH + \
    b"-qB4650-" + b"abcdefghijkl"
KEY = ("10.0.0.31", 50000, "10.0.0.32", 443)
ISN = 4294967200  # the first payload byte's sequence number wraps past 2**32 at offset 95


def seq(offset: int, isn: int = ISN) -> int:
    return (isn + 1 + offset) & 0xFFFFFFFF


def assembler(**kw: int) -> HandshakeAssembler:
    return HandshakeAssembler(dataclasses.replace(BitTorrentThresholds(), **kw))


def feed_all(asm: HandshakeAssembler, pieces: list[tuple[int, bytes]], *,
             isn: int | None = ISN, key: tuple[str, int, str, int] = KEY) -> list[bytes]:
    """Feed (offset, bytes) pieces in the order given; the joined results."""
    out = []
    for n, (offset, data) in enumerate(pieces):
        joined = asm.feed(key, seq(offset), data, 1.0 + n / 100, isn=isn, opened=n > 0)
        if joined is not None:
            out.append(joined)
    return out


def cut(points: list[int]) -> list[tuple[int, bytes]]:
    edges = [0, *points, HANDSHAKE_LEN]
    return [(a, HS[a:b]) for a, b in itertools.pairwise(edges)]


def test_the_test_handshake_is_68_bytes() -> None:
    assert len(HS) == HANDSHAKE_LEN


@pytest.mark.parametrize("at", range(1, HANDSHAKE_LEN))
def test_every_two_segment_cut_is_joined_once(at: int) -> None:
    asm = assembler()
    joined = feed_all(asm, cut([at]))
    if at < 17:  # the second segment completes it: the whole handshake
        assert joined == [HS]
    else:  # the first segment alone holds 17 bytes of the protocol string
        assert joined == [HS[:at]]
    assert asm.n_joined == 1
    assert len(asm.table) == 0


@pytest.mark.parametrize("at", range(1, HANDSHAKE_LEN))
def test_every_cut_without_the_syn(at: int) -> None:
    """No ISN: the piece holding the first byte, or a window of the string, anchors."""
    asm = assembler()
    assert feed_all(asm, cut([at]), isn=None) == ([HS] if at < 17 else [HS[:at]])


def test_one_byte_at_a_time_is_reported_at_the_17th_byte() -> None:
    asm = assembler()
    assert feed_all(asm, [(i, HS[i:i + 1]) for i in range(HANDSHAKE_LEN)]) == [HS[:17]]
    # the rest of the bytes open nothing new: the side's first payload came
    assert len(asm.table) == 0


def test_min_bytes_20_waits_for_the_whole_string() -> None:
    asm = assembler(handshake_min_bytes=20)
    assert feed_all(asm, [(i, HS[i:i + 1]) for i in range(HANDSHAKE_LEN)]) == [HS[:20]]
    # after a cut at 17 the filter drops the continuation: 17 bytes are all there is
    assert feed_all(assembler(handshake_min_bytes=20), cut([17])[:1]) == []


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("known_isn", [True, False])
def test_out_of_order_pieces(seed: int, known_isn: bool) -> None:
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, 20), rng.randint(2, 8)))
    pieces = cut(points)
    rng.shuffle(pieces)
    asm = assembler()
    joined = feed_all(asm, pieces, isn=ISN if known_isn else None)
    assert len(joined) == 1
    assert len(joined[0]) >= 17
    assert HS.startswith(joined[0])


def test_three_byte_pieces_before_the_anchor_wait_for_it() -> None:
    """Tiny pieces say nothing about where they are until the first byte arrives."""
    pieces = [(i, HS[i:i + 3]) for i in range(3, 18, 3)]
    asm = assembler()
    assert feed_all(asm, pieces, isn=None) == []
    assert len(asm.table) == 1
    assert asm.feed(KEY, seq(0), HS[:3], 2.0, isn=None, opened=True) == HS[:18]


def test_retransmits_and_a_larger_retransmit() -> None:
    asm = assembler()
    pieces = [(0, HS[:5]), (0, HS[:5]), (5, HS[5:9]), (0, HS[:9]), (0, HS[:30])]
    assert feed_all(asm, pieces) == [HS[:30]]


def test_a_retransmit_that_disagrees_keeps_the_first_copy() -> None:
    """The receiving stack keeps in-order data it already has: so does the assembly."""
    asm = assembler()
    pieces = [(0, HS[:8]), (0, b"\x13BitXXXX"), (8, HS[8:])]
    assert feed_all(asm, pieces) == [HS]
    # new bytes that contradict the string do end it: the receiver gets those
    asm = assembler()
    assert feed_all(asm, [(0, HS[:8]), (0, b"\x13BitXXXXXXXX"), (12, HS[12:])]) == []


def test_a_retransmit_starting_before_the_first_byte() -> None:
    asm = assembler()
    assert asm.feed(KEY, seq(5), HS[5:10], 1.0, isn=ISN, opened=False) is None
    # 3 bytes before the first payload byte (impossible in TCP, but must not crash)
    assert asm.feed(KEY, seq(-3), b"xyz" + HS[:20], 1.1, isn=ISN, opened=False) == HS[:20]


def test_bytes_that_contradict_the_string_end_the_assembly() -> None:
    asm = assembler()
    assert feed_all(asm, [(0, HS[:6]), (6, b"rrenz protocol" + bytes(48))]) == []
    assert len(asm.table) == 0


def test_other_protocols_open_no_assembly() -> None:
    asm = assembler()
    for offset, data in [(0, b"GET / HTTP/1.1\r\n"), (0, b"\x16\x03\x01\x02\x00"),
                         (0, b"SSH-2.0-OpenSSH_9.2\r\n"), (0, b"ls"), (500, b"ab"),
                         (500, b"protocol")]:
        assert asm.feed(KEY, seq(offset), data, 1.0, isn=ISN, opened=offset > 0) is None
    assert len(asm.table) == 0
    # without an ISN only tiny pieces and pieces of the string are kept
    assert asm.feed(KEY, 7, b"GET / HTTP/1.1", 1.0, isn=None, opened=False) is None
    assert len(asm.table) == 0


def test_anchor_names_the_first_byte() -> None:
    assert anchor(1000, b"\x13Bi") == 1000
    assert anchor(1010, b"rent protocol") == 1003
    assert anchor(5, HS[16:]) == (5 - 16) & 0xFFFFFFFF
    assert anchor(1000, b"Bi") is None  # tiny: could be anywhere
    assert anchor(1000, b"rent-a-car") is None  # a window, then not the string
    assert anchor(1000, HS[17:]) is None  # no whole window left


def test_the_table_is_capped_and_evictions_are_counted() -> None:
    asm = assembler(max_handshake_assemblies=16)
    for port in range(40):
        key = ("10.0.0.31", 40000 + port, "10.0.0.32", 443)
        asm.feed(key, seq(0), HS[:5], 1.0 + port, isn=ISN, opened=False)
    counters = asm.counters()
    assert counters["handshake_assemblies"] == 16
    assert counters["handshake_assemblies_evicted"] == 24


def test_unanchored_pieces_are_evicted_first() -> None:
    asm = assembler(max_handshake_assemblies=16)
    anchored = ("10.0.0.31", 50000, "10.0.0.32", 443)
    asm.feed(anchored, seq(0), HS[:5], 0.5, isn=ISN, opened=False)
    for port in range(30):  # keystroke-like tiny segments of flows without a SYN
        asm.feed(("10.0.0.40", 30000 + port, "10.0.0.32", 22), 1, b"x", 1.0, isn=None,
                 opened=False)
    assert anchored in asm.table
    assert asm.feed(anchored, seq(5), HS[5:], 2.0, isn=ISN, opened=True) == HS


def test_idle_assemblies_expire() -> None:
    asm = assembler(handshake_timeout=10)
    asm.feed(KEY, seq(0), HS[:5], 100.0, isn=ISN, opened=False)
    asm.expire(109.9)
    assert len(asm.table) == 1
    asm.expire(110.0)
    assert len(asm.table) == 0
    assert asm.counters()["handshake_assemblies_expired"] == 1
    # the continuation after the timeout is no longer joined
    assert asm.feed(KEY, seq(5), HS[5:], 111.0, isn=ISN, opened=True) is None


# -- inside the detector ------------------------------------------------------------------
def _pkt(ts: float, flags: int, sq: int, payload: bytes = b"", *, src: str = "10.0.0.31",
         dst: str = "10.0.0.32", sport: int = 50000, dport: int = 443) -> Packet:
    return Packet(ts=ts, wire_len=66 + len(payload), src_mac="02:00:00:00:00:31",
                  ip_version=4, src_ip=src, dst_ip=dst, proto=6, sport=sport, dport=dport,
                  tcp_flags=flags, tcp_seq=sq, payload=payload, payload_len=len(payload))


def _detect(points: list[int], *, syn: bool = True) -> list[Finding]:
    det = BitTorrentDetector(shipped_network(), HostIntel(1800, 64))
    out: list[Finding] = []
    if syn:
        out += det.observe(_pkt(1.0, 0x02, ISN))
        out += det.observe(_pkt(1.001, 0x12, 9000, src="10.0.0.32", dst="10.0.0.31",
                                sport=443, dport=50000))
    for n, (offset, data) in enumerate(cut(points)):
        out += det.observe(_pkt(1.01 + n / 10, 0x18, seq(offset), data))
    out += det.tick(100.0)
    return out


@pytest.mark.parametrize("at", range(1, HANDSHAKE_LEN))
def test_detector_reports_every_cut_once(at: int) -> None:
    found = _detect([at])
    assert [(f.kind, f.subtype, f.source.ip if f.source else "") for f in found] == [
        ("bittorrent", "handshake", "10.0.0.31")]
    evidence = found[0].evidence
    assert isinstance(evidence, BitTorrentEvidence)
    assert evidence.port == 443
    # whole after a cut at 1-16; the first segment alone holds the info-hash from 48 on
    want = INFO_HASH.hex() if at < 17 or at >= 48 else None
    assert evidence.info_hash == want


def test_detector_one_byte_at_a_time_without_syn() -> None:
    found = _detect(list(range(1, HANDSHAKE_LEN)), syn=False)
    assert [f.subtype for f in found] == ["handshake"]


def test_detector_counts_the_assemblies() -> None:
    det = BitTorrentDetector(shipped_network(), HostIntel(1800, 64))
    det.observe(_pkt(1.0, 0x02, ISN))
    det.observe(_pkt(1.1, 0x18, seq(0), HS[:5]))
    assert det.counters()["handshake_assemblies"] == 1
    det.observe(_pkt(1.2, 0x18, seq(5), HS[5:]))
    counters = det.counters()
    assert counters["handshake_assemblies"] == 0
    assert counters["handshakes_joined"] == 1
    assert counters["handshake_assemblies_evicted"] == 0
