"""Detectors never raise, and their memory stays bounded under a spoofed-source flood."""

from __future__ import annotations

import random

from conftest import shipped_network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.clock import FakeClock
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect import DetectorChain
from edgeguard.net.detect.base import Detector
from edgeguard.net.packet import ArpInfo, IcmpQuote, Packet

IPS = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.5", "fd00::1", "", "0.0.0.0",
                       "239.192.152.143", "255.255.255.255", "not-an-ip"])
MACS = st.sampled_from(["02:00:00:00:00:01", "02:00:00:00:00:02", "ff:ff:ff:ff:ff:ff", ""])
PORTS = st.sampled_from([0, 22, 80, 443, 6771, 6881, 7680, 65535])
PAYLOADS = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"\x13BitTorrent protocol", b"\x13Bit", b"d1:ad2:id20:", b"d1:rd2:id20:",
                     b"GET /announce?info_hash=x HTTP/1.1\r\n",
                     b"HTTP/1.1 200 OK\r\n\r\nd8:complete",
                     b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00abcd", b"BT-SEARCH * ",
                     b"\x41\x00\x30\x39" + bytes(16), b"\x21\x02\x30\x39" + bytes(16)]))

packets = st.builds(
    Packet,
    ts=st.floats(min_value=0, max_value=5000, allow_nan=False),
    wire_len=st.integers(0, 70000),
    src_mac=MACS, dst_mac=MACS, ethertype=st.sampled_from([0, 0x0800, 0x0806, 0x86DD]),
    ip_version=st.sampled_from([0, 4, 6]), src_ip=IPS, dst_ip=IPS, ttl=st.integers(0, 255),
    proto=st.sampled_from([0, 1, 6, 17, 58, 132]), sport=PORTS, dport=PORTS,
    tcp_flags=st.integers(0, 255), tcp_seq=st.integers(0, 2**32 - 1),
    tcp_ack=st.integers(0, 2**32 - 1), tcp_window=st.integers(0, 65535),
    icmp_type=st.integers(-1, 255), icmp_code=st.integers(-1, 255),
    icmp_quote=st.none() | st.builds(IcmpQuote, IPS, IPS, st.sampled_from([6, 17, 1]),
                                     st.none() | PORTS, st.none() | PORTS),
    arp=st.none() | st.builds(ArpInfo, st.integers(0, 3), MACS, IPS, MACS, IPS),
    payload=PAYLOADS, payload_len=st.integers(0, 70000),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packets, max_size=60), st.lists(st.floats(0, 10000, allow_nan=False),
                                                  max_size=3))
def test_any_packet_sequence_never_raises(seq: list[Packet], ticks: list[float]) -> None:
    chain = DetectorChain(shipped_network(), FakeClock())
    for pkt in seq:
        chain.feed(pkt)
    for now in ticks:
        chain.tick(now)
    chain.finish()
    assert all(value >= 0 for value in chain.counters().values())


def small_caps() -> NetworkConfig:
    """The shipped policy with small caps, so a bounded test reaches them."""
    import dataclasses  # noqa: PLC0415

    cfg = shipped_network()
    return dataclasses.replace(
        cfg,
        scan=dataclasses.replace(cfg.scan, max_sources=2048, max_pending=4096,
                                 max_contacts=8192),
        flood=dataclasses.replace(cfg.flood, max_entries=512),
        bittorrent=dataclasses.replace(cfg.bittorrent, max_flows=1024),
    )


def table_sizes(det: Detector) -> dict[str, int]:
    return {k: v for k, v in det.counters().items() if not k.endswith("_evicted")}


def test_spoofed_flood_keeps_tables_bounded_and_a_scan_detected() -> None:
    """200k SYNs from random spoofed sources (one MAC) with an nmap-like scan inside."""
    cfg = small_caps()
    chain = DetectorChain(cfg, FakeClock())
    rng = random.Random(4)
    findings = []
    ts = 1000.0
    for i in range(200_000):
        ts += 0.00002
        src = ".".join(str(rng.randrange(1, 224) if n == 0 else rng.randrange(256))
                       for n in range(4))
        findings += chain.feed(Packet(ts=ts, wire_len=60, src_mac="02:00:00:00:00:48",
                                      ip_version=4, src_ip=src, dst_ip="10.0.0.13", proto=6,
                                      sport=rng.randrange(1024, 65535), dport=22, tcp_flags=0x02))
        if i % 1000 == 0:  # the concurrent scan: one probe and its RST every 1000 packets
            port = 1 + i // 1000
            findings += chain.feed(Packet(ts=ts, wire_len=60, src_mac="02:00:00:00:00:07",
                                          ip_version=4, src_ip="10.0.0.7", dst_ip="10.0.0.5",
                                          proto=6, sport=40000, dport=port, tcp_flags=0x02))
            findings += chain.feed(Packet(ts=ts, wire_len=60, src_mac="02:00:00:00:00:05",
                                          ip_version=4, src_ip="10.0.0.5", dst_ip="10.0.0.7",
                                          proto=6, sport=port, dport=40000, tcp_flags=0x14))
    findings += chain.finish()
    counters = chain.counters()
    assert counters["scan.sources"] <= cfg.scan.max_sources
    assert counters["scan.pending"] <= cfg.scan.max_pending
    assert counters["scan.contacts"] <= cfg.scan.max_contacts
    assert counters["scan.tcp_flows"] <= cfg.scan.max_pending
    assert counters["flood.rates"] <= cfg.flood.max_entries
    assert counters["bittorrent.tcp_flows"] <= cfg.bittorrent.max_flows
    assert counters["scan.sources_evicted"] > 0
    assert counters["scan.pending_evicted"] + counters["scan.sources_evicted"] > 0
    kinds = {(f.kind, f.subtype, f.source.ip if f.source else None) for f in findings}
    assert ("scan", "syn", "10.0.0.7") in kinds
    assert any(k[:2] == ("flood", "spoofed-syn-flood") for k in kinds)
    # the spoofed sources themselves are never reported as scanners
    assert {k for k in kinds if k[0] == "scan"} == {("scan", "syn", "10.0.0.7")}
