"""Unit tests of the detector building blocks: tables, signatures, TRW, policy knobs."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path

import pytest
from conftest import shipped_network

from edgeguard.clock import FakeClock
from edgeguard.ecs import finding_record
from edgeguard.net.config import ExclusionProtocol, PortExclusion, ScanThresholds
from edgeguard.net.detect import DetectorChain
from edgeguard.net.detect import bt_signatures as sig
from edgeguard.net.detect.bittorrent import encrypted_confidence
from edgeguard.net.detect.common import (
    BoundedTable,
    CountTable,
    entropy_ratio,
    flag_text,
    summary,
)
from edgeguard.net.detect.evidence import FloodEvidence
from edgeguard.net.detect.scan_state import Trw
from edgeguard.net.packet import Packet
from edgeguard.policy.load import PolicyError, load_policy


def test_bounded_table_evicts_least_recent_and_counts() -> None:
    gone: list[int] = []
    table: BoundedTable[int, str] = BoundedTable(3, on_evict=lambda k, v: gone.append(k))
    for key in range(3):
        table.put(key, str(key))
    table.touch(0)
    table.put(3, "3")
    assert len(table) == 3
    assert 1 not in table
    assert gone == [1]
    assert table.evicted == 1


def test_bounded_table_prefers_cheap_victims() -> None:
    table: BoundedTable[str, int] = BoundedTable(2, prefer_evict=lambda v: v <= 1)
    table.put("suspect", 50)
    table.put("one-packet", 1)
    table.put("new", 1)
    assert "suspect" in table
    assert "one-packet" not in table


def test_entropy_separates_random_from_text() -> None:
    assert entropy_ratio(os.urandom(190)) > 0.85
    assert entropy_ratio(b"GET /announce?info_hash=abc HTTP/1.1\r\nHost: x\r\n" * 3) < 0.8
    assert entropy_ratio(b"") == 0.0


def test_summary_and_flags() -> None:
    pkt = Packet(ts=1.5, wire_len=60, src_mac="02:00:00:00:00:07", src_ip="fd00::7",
                 dst_ip="fd00::5", proto=6, sport=1, dport=22, tcp_flags=0x29)
    assert "[fd00::7]:1 > [fd00::5]:22 tcp FPU" in summary(pkt)
    assert flag_text(0) == "none"


@pytest.mark.parametrize(("payload", "kind"), [
    (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", "query"),
    (b"d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re", "reply"),
    (b"d2:ip6:\x0a\x00\x00\x01\x1a\xe11:rd2:id20:abcdefghij0123456789e", "reply"),
    (b"d1:ad2:bsi1e2:id20:abcdefghij0123456789e", "query"),
    (b"d4:name5:hello", None),
    (b"\x00\x01", None),
])
def test_dht_messages(payload: bytes, kind: str | None) -> None:
    assert sig.dht_message(payload) == kind


def test_utp_header_rules() -> None:
    good = bytes([0x41, 0x00, 0x30, 0x39]) + bytes(12) + b"\x00\x07\x00\x00"
    assert sig.utp_header(good) is not None
    assert sig.utp_header(bytes([0x42]) + good[1:]) is None  # version 2
    assert sig.utp_header(bytes([0x51]) + good[1:]) is None  # type 5
    assert sig.utp_header(good[:1] + b"\x03" + good[2:]) is None  # extension 3
    assert sig.utp_header(good[:2] + b"\x00\x00" + good[4:]) is None  # connection id 0
    assert sig.utp_header(good[:19]) is None  # short


def test_tracker_and_metainfo_signatures() -> None:
    assert sig.http_tracker_request(b"GET /announce?info_hash=%AA HTTP/1.1\r\n") == "announce"
    assert sig.http_tracker_request(b"GET /scrape?info_hash=%AA HTTP/1.1\r\n") == "scrape"
    assert sig.http_tracker_request(b"POST /announce?info_hash=1 HTTP/1.1\r\n") is None
    assert sig.torrent_file_request(b"GET /a/B.TORRENT?x=1 HTTP/1.1\r\n")
    assert not sig.torrent_file_request(b"GET /torrent.html HTTP/1.1\r\n")
    assert sig.torrent_file_response(b"d8:announce35:http://t/announce")
    connect = b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\x00\x00\x00\x2a"
    assert sig.udp_tracker_connect(connect) == 42
    assert sig.udp_tracker_connect(connect[:8] + b"\x00\x00\x00\x01" + connect[12:]) is None
    hs = sig.HANDSHAKE + bytes(8) + bytes(range(20)) + b"-peer-id-0123456789"
    assert sig.handshake_info_hash(hs) == bytes(range(20)).hex()
    assert not sig.is_lsd("239.192.152.143", 6772, b"BT-SEARCH * HTTP/1.1")


def test_trw_alarms_after_four_straight_failures() -> None:
    trw = Trw.from_config(ScanThresholds())
    assert 3 * trw.fail_step < trw.alarm <= 4 * trw.fail_step
    assert trw.ok_step < 0 < trw.fail_step


def test_encrypted_confidence_grows_with_evidence() -> None:
    assert encrypted_confidence(0, 5, 5) == 0.0
    low = encrypted_confidence(1, 2, 0)
    assert low < encrypted_confidence(2, 2, 0) < encrypted_confidence(2, 2, 2) <= 0.99
    assert encrypted_confidence(1, 3, 0) > low


def _probe_run(src: str) -> list[Packet]:
    out = []
    for port in range(20, 30):
        out.append(Packet(ts=1.0 + port / 1000, wire_len=60, src_mac="02:00:00:00:00:07",
                          ip_version=4, src_ip=src, dst_ip="10.0.0.5", proto=6, sport=40000,
                          dport=port, tcp_flags=0x01))
    return out


def test_allowlisted_source_is_never_reported() -> None:
    cfg = dataclasses.replace(shipped_network(),
                              allowlist=(ipaddress.ip_network("10.0.9.0/24"),))
    chain = DetectorChain(cfg, FakeClock())
    assert chain.run(_probe_run("10.0.9.7")) == []
    assert chain.counters()["detect.allowlisted_findings"] >= 1
    assert [f.source.ip for f in DetectorChain(cfg, FakeClock()).run(_probe_run("10.0.0.7"))
            if f.source] == ["10.0.0.7"]


def test_findings_render_as_ecs_records() -> None:
    findings = DetectorChain(shipped_network(), FakeClock()).run(_probe_run("10.0.0.7"))
    record = finding_record(findings[0])
    assert record.fields["edgeguard.scan.type"] == "fin"
    assert record.fields["edgeguard.scan.distinct_ports"] == 10
    assert record.source is not None
    assert record.source.mac == "02:00:00:00:00:07"


def test_port_exclusion_validation() -> None:
    with pytest.raises(ValueError, match="port_range"):
        PortExclusion("x", ExclusionProtocol.UDP, port_range=(10, 5))
    with pytest.raises(ValueError, match="needs 'ports'"):
        PortExclusion("x", ExclusionProtocol.UDP)
    rule = PortExclusion("capwap", ExclusionProtocol.UDP, (5246, 5247))
    assert rule.matches(17, 5247)
    assert not rule.matches(6, 5247)


def test_thresholds_come_from_the_policy(tmp_path: Path) -> None:
    override = tmp_path / "net.yaml"
    override.write_text(
        "network:\n"
        "  scan: {min_failed_contacts: 6, slow_gap: 2s, masscan_rate: 5000/s}\n"
        "  flood: {syn_rate: 20000/s}\n"
        "  exclusions:\n"
        "    - {name: lab-agent, protocol: tcp, ports: [9100]}\n")
    net = load_policy([override], "gateway").policy.network
    assert net.scan.min_failed_contacts == 6
    assert net.scan.slow_gap == 2.0
    assert net.scan.masscan_rate == 5000.0
    assert net.flood.syn_rate == 20000.0
    assert [e.name for e in net.exclusions] == ["lab-agent"]


def test_bad_threshold_is_a_policy_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  scan:\n    min_failed_contacts: 1\n    speed: 3\n")
    with pytest.raises(PolicyError) as err:
        load_policy([bad])
    text = str(err.value)
    assert "network.scan.min_failed_contacts" in text
    assert "network.scan.speed" in text


def test_shipped_exclusions_cover_known_benign_ports() -> None:
    names = {e.name for e in shipped_network().exclusions}
    assert {"windows-delivery-optimization", "teredo", "capwap"} <= names


def test_docs_list_every_detector_key() -> None:
    from edgeguard.net.config import (  # noqa: PLC0415
        ArpThresholds,
        BitTorrentThresholds,
        DetectConfig,
        FloodThresholds,
    )

    doc = (Path(__file__).resolve().parents[4] / "docs" / "detectors.md").read_text()
    for cls in (DetectConfig, ScanThresholds, BitTorrentThresholds, ArpThresholds,
                FloodThresholds):
        for field in dataclasses.fields(cls):
            assert f"| `{field.name}` |" in doc, f"docs/detectors.md lacks {field.name}"


def test_sampled_large_udp_counts_for_the_datagrams_it_stands_for() -> None:
    """Through the capture filter 1 in N large UDP datagrams passes: a flood of them is
    still a flood, and P2P-shaped datagrams (all passed) count once."""
    from edgeguard.net.detect.flood import FloodDetector  # noqa: PLC0415

    cfg = dataclasses.replace(shipped_network(), filter_udp_sample=64, filter_small_udp=512)
    det = FloodDetector(cfg)
    found = []
    for i in range(40):  # 40 sampled datagrams in 1 s stand for 2560/s
        found += det.observe(Packet(ts=1.0 + i / 40, wire_len=1242, src_mac="02:00:00:00:00:49",
                                    ip_version=4, src_ip="10.0.0.49", dst_ip="10.0.0.11",
                                    proto=17, sport=1000 + i, dport=5060,
                                    payload=os.urandom(64), payload_len=1200))
    assert [f.subtype for f in found] == ["udp-flood"]
    dht = FloodDetector(cfg)
    for i in range(40):
        assert not dht.observe(Packet(ts=1.0 + i / 40, wire_len=1242, src_ip="10.0.0.40",
                                      dst_ip="10.0.0.41", proto=17, sport=6881, dport=6881,
                                      payload=b"d1:rd2:id20:" + bytes(60), payload_len=1200))


def test_count_table_and_insert_keep_the_cap_and_recency() -> None:
    """The per-packet shortcuts (one lookup less than ``get`` + ``put``) evict exactly
    as ``put`` does: least recently used first, counted."""
    counts: CountTable[str] = CountTable(2)
    counts.add_one("a")
    counts.add_one("b")
    counts.add_one("a")  # "a" is now the most recent
    counts.add_one("c")  # evicts "b"
    assert (counts.get("a"), counts.get("b"), counts.get("c")) == (2, None, 1)
    assert counts.evicted == 1
    table: BoundedTable[str, int] = BoundedTable(2)
    table.insert("x", 1)
    table.insert("y", 2)
    table.touch("x")
    table.insert("z", 3)  # evicts "y", the least recent
    assert [key for key, _ in table.items()] == ["x", "z"]
    assert table.evicted == 1


@pytest.mark.parametrize("octet", range(256))
def test_udp_to_a_group_mac_is_never_a_contact(octet: int) -> None:
    """The group bit is read from the MAC text's second digit (either case), as
    ``int(mac[:2], 16) & 1`` would."""
    from edgeguard.net.detect.scan_probe import ProbeClassifier  # noqa: PLC0415

    for mac in (f"{octet:02x}:00:5e:00:00:fb", f"{octet:02X}:00:5E:00:00:FB"):
        probe = ProbeClassifier(16).classify(Packet(
            ts=1.0, wire_len=60, dst_mac=mac, ip_version=4, src_ip="10.0.0.5",
            dst_ip="10.0.0.6", proto=17, sport=40000, dport=53, payload=b"x", payload_len=1))
        assert (probe is None) == bool(octet & 1), mac


def test_flood_samples_are_the_first_packets_in_words() -> None:
    """A flood keeps its first packets and writes them out only for a finding; the
    text is what :func:`summary` gives for each."""
    from edgeguard.net.detect.flood import FloodDetector  # noqa: PLC0415

    det = FloodDetector(shipped_network())
    packets = [Packet(ts=1.0 + i / 2000, wire_len=60, src_mac="02:00:00:00:00:49",
                      ip_version=4, src_ip="10.0.0.49", dst_ip="10.0.0.11", proto=6,
                      sport=1000 + i, dport=80, tcp_flags=0x02) for i in range(1000)]
    found = [f for pkt in packets for f in det.observe(pkt)]
    assert [f.subtype for f in found] == ["syn-flood"]
    evidence = found[0].evidence
    assert isinstance(evidence, FloodEvidence)
    assert evidence.samples == tuple(summary(pkt) for pkt in packets[:3])
