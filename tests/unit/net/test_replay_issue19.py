"""Issue 19 baselines: captures made with real programs in namespaces
(tests/data/pcaps/make_issue19.sh) replayed through filter, decoders and detectors.

Each class of false alarm found on outside captures, and the genuine scans next to
them, with the finding (or its absence) asserted."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from edgeguard.cli import main
from edgeguard.events import Finding
from edgeguard.net.detect.bt_signatures import peer_wire_messages
from edgeguard.net.detect.evidence import BitTorrentEvidence, ScanEvidence
from edgeguard.net.linktype import UnsupportedLinkType
from edgeguard.net.replay import ReplayResult, replay_file
from edgeguard.policy.load import load_policy

PCAPS = Path(__file__).resolve().parents[2] / "data" / "pcaps"
CLIENT = "10.98.0.2"


def _replay(name: str) -> ReplayResult:
    return replay_file(PCAPS / name, load_policy().policy.network)


def _kinds(findings: list[Finding]) -> set[tuple[str, str | None, str]]:
    return {(f.kind, f.subtype, f.source.ip or f.source.mac if f.source else "")
            for f in findings}


@pytest.mark.parametrize("name", [
    "success.pcap",  # 25 web hosts + 33 resolvers, every contact answered, 0.4 s apart
    "oneway.pcap",  # the same traffic captured egress-only (tcpdump -Q out)
    "p2p.pcap",  # Gnutella-like fan-out: TCP+UDP to 30 peers, 26 answer, broadcasts
    "close.pcap",  # keep-alive flows from before the capture closing (FIN/ACK, RST)
    "lone_probes.pcap",  # one nmap -sN, -sF, -sX probe each: below min_failed_contacts
])
def test_benign_classes_give_no_finding(name: str) -> None:
    findings = _replay(name).findings
    assert not findings, [f.message for f in findings]


def test_egress_only_scan_is_not_judged_and_the_link_is_named_once() -> None:
    """nmap -sS captured with -Q out: every SYN unanswered in the file; silence cannot
    be judged, the counters say the link shows no return traffic."""
    result = _replay("oneway_scan.pcap")
    assert not result.findings, [f.message for f in result.findings]
    assert result.counters["scan.no_return_traffic"] == 1
    assert result.counters["scan.silence_unjudged"] >= 190
    assert result.counters["scan.answers"] == 0


def test_answered_contacts_are_counted_as_answers() -> None:
    counters = _replay("p2p.pcap").counters
    assert counters["scan.answers"] >= 26
    assert counters["scan.no_return_traffic"] == 0


@pytest.mark.parametrize("name", ["nmap1000.pcap", "nmap_paced.pcap"])
def test_nmap_syn_scan_is_labelled_by_type_not_masscan(name: str) -> None:
    """nmap_paced holds 250 probes/s for 4 s (the masscan rate) but its SYNs carry an
    MSS option and random IP ids: labelled syn. (masscan.pcap of the corpus keeps
    scan/masscan: tests/unit/net/test_replay_corpus.py.)"""
    findings = _replay(name).findings
    assert _kinds(findings) == {("scan", "syn", CLIENT)}
    evidence = findings[0].evidence
    assert isinstance(evidence, ScanEvidence)
    assert evidence.failed >= 500
    assert evidence.timing != "masscan-rate"


def test_one_set_of_contacts_is_reported_once_per_transport() -> None:
    """Whatever the capture, an actor's scan findings (summaries aside) never
    describe one transport twice."""
    for name in ("nmap1000.pcap", "sll.pcap", "p2p.pcap", "success.pcap"):
        per = Counter((f.source.ip if f.source else "", f.transport)
                      for f in _replay(name).findings
                      if f.kind == "scan" and "summary" not in f.message)
        assert all(n == 1 for n in per.values()), (name, per)


@pytest.mark.parametrize(("name", "actor"), [
    ("sll.pcap", CLIENT),  # tcpdump -i any -y LINUX_SLL
    ("sll2.pcap", CLIENT),  # tcpdump -i any -y LINUX_SLL2
    ("rawip.pcap", "172.31.98.1"),  # tcpdump on a tun device (LINKTYPE_RAW 101)
    ("link_null.pcap", "172.31.98.1"),  # the same packets as BSD null (0)
    ("link_loop.pcap", "172.31.98.1"),  # OpenBSD loop (108)
    ("link_ppp.pcap", "172.31.98.1"),  # PPP (9)
    ("link_hdlc.pcap", "172.31.98.1"),  # Cisco HDLC (104)
    ("link_raw12.pcap", "172.31.98.1"),  # DLT_RAW 12
    ("link_raw14.pcap", "172.31.98.1"),  # DLT_RAW 14 (OpenBSD)
    ("link_ipv4.pcap", "172.31.98.1"),  # LINKTYPE_IPV4 (228)
])
def test_every_supported_link_type_is_read(name: str, actor: str) -> None:
    result = _replay(name)
    assert _kinds(result.findings) == {("scan", "syn", actor)}
    assert result.counters["link_damaged"] == 0
    assert result.counters["unsupported_linktype"] == 0


def test_unsupported_link_type_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnsupportedLinkType):
        _replay("link_user0.pcap")
    assert main(["replay", str(PCAPS / "link_user0.pcap")]) == 2
    err = capsys.readouterr().err
    assert "link type 147 not supported" in err


def test_one_way_mid_stream_utp_peer_wire_is_bittorrent() -> None:
    """libtorrent's uTP requests/haves to 6881, captured egress-only mid-stream (no
    handshake, no reply in the file): the peer-wire messages are enough."""
    found = _kinds(_replay("utp_oneway.pcap").findings)
    assert ("bittorrent", "utp", CLIENT) in found
    assert not {f for f in found if f[0] != "bittorrent"}


def test_random_payloads_do_not_parse_as_peer_wire() -> None:
    rng = random.Random(19)
    hits = sum(peer_wire_messages(rng.randbytes(rng.randrange(5, 400)))
               for _ in range(200_000))
    assert hits == 0
    assert peer_wire_messages(bytes.fromhex("0000000d06") + bytes(12))  # a request
    assert peer_wire_messages(b"\x00\x00\x00\x10\x14\x01d5:added0:e" + bytes(3))  # ut_pex
    assert not peer_wire_messages(bytes(8))  # keep-alives only


def test_encrypted_bittorrent_inferred_from_the_flows_shape_alone() -> None:
    """libtorrent with RC4 forced, no DHT/LSD/tracker/uTP: the host has no other
    BitTorrent evidence; 4 peers on unrelated high ports answered its opaque 96-608
    byte opening with their own. Reported with a confidence and the evidence."""
    findings = _replay("mse.pcap").findings
    assert _kinds(findings) == {("bittorrent", "encrypted", CLIENT)}
    evidence = findings[0].evidence
    assert isinstance(evidence, BitTorrentEvidence)
    assert evidence.confidence is not None
    assert 0.6 <= evidence.confidence < 1.0
    assert evidence.host_evidence == ("mse-shape",)
    assert len(findings[0].destinations) == 4


def test_tls_on_odd_ports_is_not_encrypted_bittorrent() -> None:
    """openssl s_client to s_server on 5 odd ports: opaque after the hello, but the
    hello names TLS; nothing is inferred."""
    assert not _replay("tls_odd_ports.pcap").findings
