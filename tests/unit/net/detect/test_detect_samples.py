"""One test per annotated sample case in tests/data/detect/*.yaml (fail2ban-style).

Each case lists the findings expected above its packets; the shipped detectors must
produce exactly those (kind, subtype, actor), one notice per identifier.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from _samples import parse_packets
from conftest import shipped_network

from edgeguard.clock import FakeClock
from edgeguard.events import Finding
from edgeguard.net.detect import DetectorChain

DATA = Path(__file__).resolve().parents[3] / "data" / "detect"


def cases() -> list[Any]:
    out = []
    for path in sorted(DATA.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


def key(finding: Finding) -> tuple[str, str, str]:
    src = finding.source
    actor = (src.ip or src.mac or "") if src is not None else ""
    return finding.kind, finding.subtype, actor


@pytest.mark.parametrize("case", cases())
def test_sample(case: dict[str, Any]) -> None:
    cfg = shipped_network()
    if case.get("allowlist"):
        nets = tuple(ipaddress.ip_network(n) for n in case["allowlist"])
        cfg = dataclasses.replace(cfg, allowlist=nets)
    chain = DetectorChain(cfg, FakeClock())
    findings = chain.run(parse_packets(case["packets"]))
    produced = {key(f) for f in findings}
    wanted = set()
    for e in case["expect"]:
        actor = str(e["actor"])
        # a MAC-named actor may also carry the address it owns: match on either
        match = next((k for k in produced if k[:2] == (e["kind"], e["subtype"])
                      and any(actor == (a or "") for a in _actors(findings, k))), None)
        wanted.add(match or (e["kind"], e["subtype"], actor))
    assert produced == wanted, "\n".join(f"{f.kind}/{f.subtype} {f.source} {f.message}"
                                         for f in findings)
    assert len({f.identifier for f in findings}) == len(wanted)


def _actors(findings: list[Finding], k: tuple[str, str, str]) -> list[str | None]:
    return [a for f in findings if key(f) == k and f.source is not None
            for a in (f.source.ip, f.source.mac)]


def test_every_detector_has_samples() -> None:
    names = {p.stem for p in DATA.glob("*.yaml")}
    assert {"scan", "bittorrent", "arp", "flood", "sweep"} <= names
