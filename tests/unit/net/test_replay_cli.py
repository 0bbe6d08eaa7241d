"""``edgeguard replay`` as a real subprocess over corpus and crafted captures."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from edgeguard.audit.verify import verify_paths
from edgeguard.events import Finding, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.packet import Packet
from edgeguard.net.replay import replay_file
from tests.conftest import run_edgeguard
from tests.unit.net.netdata import CORPUS, PCAPS

HAVE_CORPUS = (CORPUS / "scans.pcap").exists()


@pytest.mark.skipif(not HAVE_CORPUS, reason="no corpus")
def test_scans_pcap_json_findings_and_exit_1() -> None:
    result = run_edgeguard(["replay", str(CORPUS / "scans.pcap"), "--json"], timeout=300)
    assert result.returncode == 1, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert rows
    actors = {r["source"]["ip"] for r in rows}
    assert actors == {f"10.99.0.{n}" for n in range(21, 28)}
    for row in rows:
        assert row["event"]["kind"] == "alert"
        assert row["destination"]["ip"] == "10.99.0.10"
        assert row["edgeguard"]["finding"]["kind"] == "scan"
        assert "scan" in row["edgeguard"]  # the detector's own evidence, edgeguard.scan.*


@pytest.mark.skipif(not HAVE_CORPUS, reason="no corpus")
def test_benign_pcap_has_no_findings_and_exit_0() -> None:
    result = run_edgeguard(["replay", str(CORPUS / "benign.pcap"), "--counters"], timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    counters = dict(line.split() for line in result.stderr.splitlines())
    assert int(counters["filtered_out"]) > 0.85 * int(counters["frames"])


@pytest.mark.skipif(not HAVE_CORPUS, reason="no corpus")
def test_audit_dir_gets_hash_chained_alerts(tmp_path: Path) -> None:
    result = run_edgeguard(["replay", str(CORPUS / "masscan.pcap"), "--audit",
                            str(tmp_path / "audit")], timeout=300)
    assert result.returncode == 1, result.stderr
    lines = (tmp_path / "audit" / "audit.jsonl").read_bytes().splitlines()
    alerts = [r for r in map(orjson.loads, lines) if r["event"]["kind"] == "alert"]
    assert alerts
    assert {a["source"]["ip"] for a in alerts} == {"10.99.0.28"}
    assert all(a["edgeguard"]["mode"] == "monitor" for a in alerts)
    verified = verify_paths([tmp_path / "audit"])
    assert verified.ok, verified.problem


def test_input_errors_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pcap"
    bogus.write_text("not a capture")
    assert run_edgeguard(["replay", str(bogus)]).returncode == 2
    assert run_edgeguard(["replay", str(tmp_path / "missing.pcap")]).returncode == 2
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("network:\n  snap_length: 12\n")
    result = run_edgeguard(["replay", str(PCAPS / "filter_cases.pcap"), "--policy",
                            str(bad_policy)])
    assert result.returncode == 2
    assert "snap_length" in result.stderr


class Recorder:
    """A detector-chain double: records what it is fed, reports every SYN."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.finished = False

    def feed(self, pkt: Packet) -> list[Finding]:
        self.packets.append(pkt)
        if pkt.tcp_flags == 0x02:
            return [Finding("test", "syn", "syn seen", pkt.src_ip, Severity.MINOR)]
        return []

    def tick(self, now: float | None = None) -> list[Finding]:
        return []

    def finish(self) -> list[Finding]:
        self.finished = True
        return []

    def counters(self) -> dict[str, int]:
        return {"fed": len(self.packets)}


def test_replay_feeds_exactly_the_filtered_frames() -> None:
    chain = Recorder()
    result = replay_file(PCAPS / "filter_cases.pcap", NetworkConfig(filter_udp_sample=0), chain)
    labels = (PCAPS / "filter_cases.labels").read_text().splitlines()
    assert len(chain.packets) == sum(1 for label in labels if label.startswith("keep"))
    assert chain.finished
    assert result.counters["fed"] == len(chain.packets)
    assert result.counters["filtered_out"] == labels.count("drop") + sum(
        1 for label in labels if label.startswith("drop"))
    syns = [f for f in result.findings if f.subtype == "syn"]
    assert len(syns) == 6  # the plain SYNs among the crafted frames (not SYN-ACK)
    assert all(len(p.payload) <= 256 for p in chain.packets)  # the snap length applies
