"""Baseline: ``replay`` of tests/data/pcaps/bt_split.pcap (handshakes split every way,
through the capture filter, decoder and detectors) gives exactly the findings in
bt_split.labels, one line per case (see make_bt_split.py)."""

from __future__ import annotations

import pytest

from edgeguard.net.detect.evidence import BitTorrentEvidence
from edgeguard.net.replay import ReplayResult, replay_file
from edgeguard.policy.load import load_policy
from tests.unit.net.netdata import PCAPS

LINES = [line.split("  # ") for line in (PCAPS / "bt_split.labels").read_text().splitlines()]
#: address -> [subtype, info-hash or "-"], or ["none"]
EXPECTED = {fields.split()[0]: fields.split()[1:] for fields, _ in LINES}
NAMES = {fields.split()[0]: name for fields, name in LINES}


@pytest.fixture(scope="module")
def replayed() -> ReplayResult:
    return replay_file(PCAPS / "bt_split.pcap", load_policy().policy.network)


def test_every_case_is_labelled() -> None:
    assert len(EXPECTED) == len(LINES) > 70


@pytest.mark.parametrize("addr", sorted(EXPECTED), ids=[NAMES[a] for a in sorted(EXPECTED)])
def test_case_gives_its_baseline(replayed: ReplayResult, addr: str) -> None:
    got = []
    for finding in replayed.findings:
        if finding.source is not None and finding.source.ip == addr:
            evidence = finding.evidence
            assert isinstance(evidence, BitTorrentEvidence)
            got.append([finding.subtype, evidence.info_hash or "-"])
    want = EXPECTED[addr]
    assert got == ([] if want == ["none"] else [want])


def test_nothing_else_is_reported(replayed: ReplayResult) -> None:
    assert {f.source.ip for f in replayed.findings if f.source} <= set(EXPECTED)
    assert all(f.kind == "bittorrent" for f in replayed.findings)


def test_the_filter_still_drops_the_acks(replayed: ReplayResult) -> None:
    counters = replayed.counters
    assert counters["filtered_out"] >= counters["file_frames"] / 2
    assert counters["bittorrent.handshake_assemblies_evicted"] == 0
