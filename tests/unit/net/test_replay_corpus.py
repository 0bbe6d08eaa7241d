"""Baselines through the real path: every corpus capture replayed through the kernel
filter's semantics, our decoders and the shipped detectors must give exactly the
labelled findings (the detectors' own baseline feeds them unfiltered packets; this one
proves the filter keeps everything they need)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from edgeguard.events import Finding
from edgeguard.net.replay import replay_file
from edgeguard.policy.load import load_policy
from tests.unit.net.netdata import CORPUS

LABELS: dict[str, dict[str, Any]] = (
    yaml.safe_load((CORPUS / "labels.yaml").read_text())["files"]
    if (CORPUS / "labels.yaml").exists() else {})
pytestmark = pytest.mark.skipif(not LABELS, reason="no corpus")


def _key(kind: str, subtype: str | None, actor: str) -> tuple[str, str | None, str]:
    return kind, subtype, actor


def _found(findings: list[Finding]) -> set[tuple[str, str | None, str]]:
    out = set()
    for f in findings:
        for actor in (f.source.ip, f.source.mac) if f.source else ():
            if actor:
                out.add(_key(f.kind, f.subtype, actor))
    return out


@pytest.mark.parametrize("name", sorted(LABELS))
def test_replay_gives_exactly_the_labelled_findings(name: str) -> None:
    network = load_policy().policy.network
    findings = replay_file(CORPUS / name, network).findings
    found = _found(findings)
    expected = {_key(e["kind"], e.get("subtype"), str(e["actor"]))
                for e in LABELS[name].get("expected") or []}
    missing = {e for e in expected
               if e not in found and not (e[1] is None and any(f[0] == e[0] and f[2] == e[2]
                                                                for f in found))}
    assert not missing, f"{name}: missing {sorted(missing, key=str)}"
    actors = {e[2] for e in expected}
    benign = {str(h) for h in LABELS[name].get("benign_hosts") or []}
    for f in findings:
        names = {a for a in ((f.source.ip, f.source.mac) if f.source else ()) if a}
        assert not names & benign, f"{name}: benign host reported: {f.message}"
        assert names & actors, f"{name}: unexpected: {f.message}"
