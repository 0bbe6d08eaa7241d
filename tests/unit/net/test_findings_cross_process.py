"""A capture worker sends its findings to the daemon pickled (edgeguard.net.worker): every
finding the detectors make must survive that round trip, in the compiled build too (a
frozen dataclass compiled with mypyc cannot be unpickled: the daemon then saw no network
finding at all while replay, in one process, was fine)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from edgeguard.net.linktype import UnsupportedLinkType
from edgeguard.net.replay import replay_file
from edgeguard.net.worker import WorkerReport
from edgeguard.policy.load import load_policy
from tests.unit.net.golden_findings import captures


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_every_finding_crosses_the_worker_socket(path: Path) -> None:
    try:
        result = replay_file(path, load_policy().policy.network)
    except UnsupportedLinkType:
        pytest.skip("a link type replay refuses: no findings")
    report = WorkerReport(findings=tuple(result.findings))
    back = pickle.loads(pickle.dumps(report))
    assert list(back.findings) == result.findings


def test_the_corpus_has_findings_of_every_network_kind() -> None:
    """The parametrised test above means something only if it sees every evidence type."""
    seen: set[str] = set()
    for path in captures():
        try:
            result = replay_file(path, load_policy().policy.network)
        except UnsupportedLinkType:
            continue
        seen |= {type(f.evidence).__name__ for f in result.findings}
    assert {"ScanEvidence", "BitTorrentEvidence", "FloodEvidence"} <= seen, seen
