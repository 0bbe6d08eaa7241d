"""Every capture replays to exactly its recorded findings and counters (golden/*.json).

This pins the detectors' output across bookkeeping rewrites (the scan detector's running
maxima) and across builds: CI runs it against the mypyc-compiled modules and again with
``EDGEGUARD_PURE=1`` (pure Python), so both give byte-identical findings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.net.golden_findings import GOLDEN, captures, dumps, record


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_replay_matches_golden(path: Path) -> None:
    target = GOLDEN / f"{path.stem}.json"
    assert target.exists(), f"no golden record for {path.name}: run golden_findings --write"
    golden = json.loads(target.read_text())
    got = record(path)
    if "counters" in golden:  # counters added later by others are not compared
        got["counters"] = {k: v for k, v in got["counters"].items() if k in golden["counters"]}
    assert dumps(got) == dumps(golden)
