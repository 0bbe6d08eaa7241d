"""Baselines: every labelled corpus capture through the shipped detectors (Zeek-style).

For each pcap in the dev corpus, the findings must be exactly the labelled ones
(kind, subtype, actor as IP or MAC), and no benign host may be an actor. Repeats with
the same identifier (closing summaries) are one notice, as in the decision engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import CORPUS, corpus_labels, corpus_packets, corpus_prefiltered, shipped_network

from edgeguard.clock import FakeClock
from edgeguard.ecs import finding_record, nest, record_fields
from edgeguard.events import Finding
from edgeguard.net.detect import DetectorChain

FILES = sorted(corpus_labels())
pytestmark = pytest.mark.skipif(not FILES, reason=f"no labelled corpus at {CORPUS}")


def actors(finding: Finding) -> set[str]:
    src = finding.source
    return {a for a in (src.ip, src.mac) if a} if src is not None else set()


def matches(finding: Finding, expected: Mapping[str, Any]) -> bool:
    return (finding.kind == expected["kind"]
            and expected.get("subtype") in (None, finding.subtype)
            and str(expected["actor"]) in actors(finding))


def describe(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.kind}/{f.subtype} {f.source} :: {f.message}" for f in findings)


@pytest.fixture(scope="module")
def results() -> dict[str, list[Finding]]:
    return {}


def run_file(name: str, results: dict[str, list[Finding]], filtered: bool = False,
             ) -> list[Finding]:
    key = f"{name} (prefiltered)" if filtered else name
    if key not in results:
        chain = DetectorChain(shipped_network(), FakeClock())
        results[key] = chain.run(corpus_prefiltered(name) if filtered else corpus_packets(name))
    return results[key]


@pytest.mark.parametrize("name", FILES)
def test_prefiltered_stream_gives_the_same_findings(name: str,
                                                    results: dict[str, list[Finding]]) -> None:
    """The live pipeline only sees what the kernel prefilter passes: same findings."""
    full = {(f.kind, f.subtype, f.source.ip if f.source else None, f.source.mac if f.source
             else None) for f in run_file(name, results)}
    filtered = {(f.kind, f.subtype, f.source.ip if f.source else None, f.source.mac if f.source
                 else None) for f in run_file(name, results, filtered=True)}
    assert filtered == full


@pytest.mark.parametrize("name", FILES)
def test_every_labelled_finding_is_found(name: str, results: dict[str, list[Finding]]) -> None:
    findings = run_file(name, results)
    label = corpus_labels()[name]
    missing = [e for e in label.get("expected") or [] if not any(matches(f, e) for f in findings)]
    assert not missing, (
        f"{name}: not found: {[(m['kind'], m.get('subtype'), m['actor']) for m in missing]}\n"
        f"produced:\n{describe(findings)}")


@pytest.mark.parametrize("name", FILES)
def test_no_finding_beyond_the_labels(name: str, results: dict[str, list[Finding]]) -> None:
    findings = run_file(name, results)
    expected = corpus_labels()[name].get("expected") or []
    extra = [f for f in findings if not any(matches(f, e) for e in expected)]
    assert not extra, f"{name}: unexpected findings:\n{describe(extra)}"


@pytest.mark.parametrize("name", FILES)
def test_benign_hosts_are_never_actors(name: str, results: dict[str, list[Finding]]) -> None:
    findings = run_file(name, results)
    benign = {str(h) for h in corpus_labels()[name].get("benign_hosts") or []}
    accused = [f for f in findings if actors(f) & benign]
    assert not accused, f"{name}: benign hosts reported:\n{describe(accused)}"


@pytest.mark.parametrize("name", FILES)
def test_one_notice_per_labelled_finding(name: str, results: dict[str, list[Finding]]) -> None:
    """Repeats share an identifier: distinct identifiers == distinct labelled findings."""
    findings = run_file(name, results)
    expected = corpus_labels()[name].get("expected") or []
    assert len({f.identifier for f in findings}) == len(expected), describe(findings)


def test_findings_carry_window_counts_and_samples(results: dict[str, list[Finding]]) -> None:
    for name in FILES:
        for f in run_file(name, results):
            assert f.last_seen >= f.first_seen > 0, f
            assert f.count >= 1, f
            fields = f.evidence.ecs_fields()
            assert any(k.startswith(f"edgeguard.{f.kind.split('-')[0]}") for k in fields), f
            assert any(k.endswith(".samples") for k in fields), f


def test_scans_are_reported_within_the_labelled_time(results: dict[str, list[Finding]]) -> None:
    """Early detection: a fast scan's first finding names a time inside the scan."""
    for name in ("scans.pcap", "evasive_dev.pcap"):
        if name not in FILES:
            continue
        for f in run_file(name, results):
            label = next(e for e in corpus_labels()[name]["expected"] if matches(f, e))
            assert f.first_seen <= float(label["last"]) + 0.5, (f, label)


def test_every_finding_renders_as_an_ecs_record(results: dict[str, list[Finding]]) -> None:
    """Evidence of every detector nests into valid ECS JSON (no field collisions)."""
    for name in FILES:
        for f in run_file(name, results):
            record = finding_record(f)
            fields = record_fields(record, f.last_seen, "gw")
            text = json.dumps(nest(fields))
            assert f.kind in text
            assert fields["source.ip" if f.source and f.source.ip else "source.mac"]
