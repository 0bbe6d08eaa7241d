"""Decoders: every layer from frames crafted with scapy, and a fuzz that nothing raises."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    TCPerror,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from edgeguard.net.decode import DecodeCounters, decode, decode_at
from edgeguard.net.packet import Packet, TcpFlags

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _decode(frame: bytes) -> tuple[Packet | None, DecodeCounters]:
    c = DecodeCounters()
    return decode(frame, 12.5, len(frame), c), c


def test_ipv4_tcp_syn() -> None:
    pkt, c = _decode(bytes(ETH / IP(src="10.0.0.7", dst="10.0.0.5", ttl=63)
                           / TCP(sport=40000, dport=22, flags="S", seq=1234, window=1024)))
    assert pkt is not None
    assert c.decoded == 1
    assert (pkt.src_mac, pkt.dst_mac) == ("02:00:00:00:00:01", "02:00:00:00:00:02")
    assert (pkt.ip_version, pkt.src_ip, pkt.dst_ip, pkt.ttl, pkt.proto) == (
        4, "10.0.0.7", "10.0.0.5", 63, 6)
    assert (pkt.sport, pkt.dport, pkt.tcp_flags, pkt.tcp_seq, pkt.tcp_window) == (
        40000, 22, TcpFlags.SYN, 1234, 1024)
    assert pkt.payload == b""
    assert pkt.payload_len == 0
    assert pkt.ts == 12.5


def test_tcp_payload_and_length_with_options_and_vlan() -> None:
    frame = bytes(ETH / Dot1Q(vlan=42) / IP(src="10.0.0.7", dst="10.0.0.5")
                  / TCP(flags="PA", options=[("NOP", None), ("NOP", None),
                                             ("Timestamp", (1, 2))])
                  / Raw(b"\x13BitTorrent protocol" + bytes(48)))
    pkt, _ = _decode(frame)
    assert pkt is not None
    assert pkt.vlan == 42
    assert pkt.ethertype == 0x0800
    assert pkt.payload.startswith(b"\x13BitTorrent protocol")
    assert pkt.payload_len == 68


def test_snapped_payload_keeps_header_length() -> None:
    frame = bytes(ETH / IP() / UDP(sport=6881, dport=6881) / Raw(b"d1:ad2:id20:" + bytes(400)))
    pkt, _ = _decode(frame[:100])
    assert pkt is not None
    assert pkt.payload_len == 412
    assert len(pkt.payload) == 100 - 42


def test_ipv6_extension_headers_to_udp() -> None:
    frame = bytes(ETH / IPv6(src="fd00::1", dst="fd00::2", hlim=5) / IPv6ExtHdrHopByHop()
                  / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(offset=0, m=0)
                  / UDP(sport=1, dport=53) / Raw(b"abc"))
    pkt, _ = _decode(frame)
    assert pkt is not None
    assert (pkt.ip_version, pkt.src_ip, pkt.dst_ip, pkt.ttl, pkt.proto) == (
        6, "fd00::1", "fd00::2", 5, 17)
    assert (pkt.sport, pkt.dport, pkt.payload, pkt.payload_len) == (1, 53, b"abc", 3)


def test_later_fragments_are_counted_not_decoded() -> None:
    _, c4 = _decode(bytes(ETH / IP(frag=100, proto=6) / Raw(bytes(40))))
    _, c6 = _decode(bytes(ETH / IPv6() / IPv6ExtHdrFragment(offset=10, nh=6) / Raw(bytes(40))))
    assert c4.fragments == 1
    assert c6.fragments == 1


def test_icmp_unreachable_quotes_the_probe() -> None:
    frame = bytes(ETH / IP(src="10.0.0.5", dst="10.0.0.7") / ICMP(type=3, code=3)
                  / IPerror(src="10.0.0.7", dst="10.0.0.5") / UDPerror(sport=5000, dport=161))
    pkt, _ = _decode(frame)
    assert pkt is not None
    assert (pkt.icmp_type, pkt.icmp_code) == (3, 3)
    q = pkt.icmp_quote
    assert q is not None
    assert (q.src_ip, q.dst_ip, q.proto, q.sport, q.dport) == (
        "10.0.0.7", "10.0.0.5", 17, 5000, 161)


def test_icmpv6_unreachable_and_echo() -> None:
    frame = bytes(ETH / IPv6(src="fd00::5", dst="fd00::7") / ICMPv6DestUnreach(code=4)
                  / IPerror6(src="fd00::7", dst="fd00::5") / TCPerror(sport=1, dport=80))
    pkt, _ = _decode(frame)
    assert pkt is not None
    assert pkt.proto == 58
    assert pkt.icmp_type == 1
    assert pkt.icmp_quote is not None
    assert pkt.icmp_quote.dport == 80
    echo, _ = _decode(bytes(ETH / IPv6() / ICMPv6EchoRequest()))
    assert echo is not None
    assert echo.icmp_type == 128
    assert echo.icmp_quote is None


def test_arp_reply() -> None:
    frame = bytes(Ether(src="02:99:00:00:00:2d", dst="02:99:00:00:00:34")
                  / ARP(op=2, hwsrc="02:99:00:00:00:2d", psrc="10.99.0.10",
                        hwdst="02:99:00:00:00:34", pdst="10.99.0.52"))
    pkt, _ = _decode(frame)
    assert pkt is not None
    assert pkt.arp is not None
    assert pkt.ip_version == 0
    assert (pkt.arp.op, pkt.arp.sender_mac, pkt.arp.sender_ip, pkt.arp.target_ip) == (
        2, "02:99:00:00:00:2d", "10.99.0.10", "10.99.0.52")


def test_truncated_and_bogus_frames_are_counted() -> None:
    good = bytes(ETH / IP() / TCP())
    c = DecodeCounters()
    for cut in range(len(good)):
        assert decode(good[:cut], 0.0, cut, c) is None
    assert c.malformed == len(good)
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x42
    assert _decode(bytes(bad_ihl))[1].malformed == 1
    assert _decode(bytes(ETH / Raw(b"\x88\xcc" + bytes(40))))[0] is None


_RNG_SEEDS = [bytes(ETH / IP() / TCP(flags="S")), bytes(ETH / IPv6() / UDP()),
              bytes(ETH / IP() / ICMP(type=3) / IPerror() / UDPerror()),
              bytes(ETH / ARP()), bytes(ETH / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / TCP())]
BATCH = 25


@settings(max_examples=4000, deadline=None)
@given(st.lists(st.binary(max_size=160), min_size=BATCH, max_size=BATCH), st.randoms())
def test_fuzz_never_raises(blobs: list[bytes], rnd: random.Random) -> None:
    """4000 examples x 25 frames = 100k inputs: random bytes, and valid frames with
    random bytes flipped or cut (so the deep layers are reached)."""
    c = DecodeCounters()
    for blob in blobs:
        seed = bytearray(rnd.choice(_RNG_SEEDS))
        for pos, value in zip(blob[::2], blob[1::2], strict=False):
            seed[pos % len(seed)] = value
        for frame in (blob, bytes(seed[: rnd.randrange(len(seed) + 1)]), bytes(seed)):
            pkt = decode(frame, 0.0, len(frame), c)
            assert pkt is None or isinstance(pkt, Packet)
    assert c.decoded + c.malformed + c.not_ip + c.fragments == 3 * BATCH


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(_RNG_SEEDS), st.integers(0, 200), st.binary(max_size=12),
       st.binary(max_size=12))
def test_decoding_in_place_reads_only_the_frame(frame: bytes, cut: int, before: bytes,
                                                after: bytes) -> None:
    """``replay`` decodes a frame inside the file's buffer: the bytes around it change
    nothing, and a frame cut short is read as cut (not past its end)."""
    frame = frame[:cut]
    buf = before + frame + after
    mine, theirs = DecodeCounters(), DecodeCounters()
    got = decode_at(buf, len(before), len(before) + len(frame), 1.5, 99, c=mine)
    assert got == decode(frame, 1.5, 99, theirs)
    assert mine == theirs
