"""ECS categorisation: one table in edgeguard/ecs.py, documented in docs/findings.md, within
ECS 8.11's allowed values and the schema; monitor mode never says "denied", and only an
action that took effect does (issue 22: dashboards counted blocks that never happened)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import (
    ACTION_ECS,
    ECS_ALLOWED_TYPES,
    ECS_KINDS,
    ECS_OUTCOMES,
    FINDING_ECS,
    Categorisation,
    action_categorisation,
    categorisation_markdown,
    dataset_of,
    nest,
    record_fields,
)
from edgeguard.events import ActionKind, ActionResult, Decision, EventKind, Finding, Outcome
from edgeguard.findings import kinds
from edgeguard.net.replay import replay_file
from edgeguard.policy.load import load_policy
from tests.conftest import ROOT
from tests.support.schema import SCHEMA_PATH, validate_record
from tests.unit.net.netdata import CORPUS
from tests.unit.wifi.harness import replay as wifi_replay

SCHEMA = orjson.loads(SCHEMA_PATH.read_bytes())
EVENT = SCHEMA["$defs"]["event"]["properties"]


def _allowed(cat: Categorisation) -> None:
    assert cat.category
    assert cat.type
    for category in cat.category:
        assert category in ECS_ALLOWED_TYPES, category
    for kind in cat.type:
        assert any(kind in ECS_ALLOWED_TYPES[c] for c in cat.category), \
            f"event.type {kind} is allowed with none of {cat.category}"


def test_every_finding_kind_and_action_is_categorised_within_ecs() -> None:
    assert set(FINDING_ECS) == set(kinds())
    assert set(ACTION_ECS) == set(ActionKind) - {ActionKind.LOG}  # log is the alert itself
    for cat in FINDING_ECS.values():
        _allowed(cat)
        assert not {"denied", "allowed"} & set(cat.type)  # a finding is a fact
    for action in ACTION_ECS:
        for outcome in Outcome:
            _allowed(action_categorisation(action, outcome))
        assert "denied" not in action_categorisation(action, Outcome.FAILURE).type


def test_the_schema_admits_exactly_ecs_values() -> None:
    assert set(EVENT["kind"]["enum"]) <= ECS_KINDS
    assert set(EVENT["outcome"]["enum"]) == ECS_OUTCOMES
    used_categories = {c for t in (*FINDING_ECS.values(), *ACTION_ECS.values())
                       for c in t.category}
    assert used_categories <= set(EVENT["category"]["items"]["enum"]) <= set(ECS_ALLOWED_TYPES)
    every_type = set().union(*ECS_ALLOWED_TYPES.values())
    assert set(EVENT["type"]["items"]["enum"]) <= every_type
    datasets = {dataset_of(f"{k}-x", k) for k in kinds()} | {dataset_of("audit-checkpoint"),
                                                             dataset_of("policy-reloaded")}
    assert datasets <= set(EVENT["dataset"]["enum"])


def test_the_table_in_docs_findings_is_the_code() -> None:
    text = (ROOT / "docs" / "findings.md").read_text()
    found = re.search(r"<!-- ecs:begin -->\n(.*?)<!-- ecs:end -->", text, re.S)
    assert found is not None, "docs/findings.md has no ECS table markers"
    assert found.group(1) == categorisation_markdown(), (
        "docs/findings.md's ECS table is stale: replace it with "
        "edgeguard.ecs.categorisation_markdown()")


@dataclass
class _Block:
    ok: bool
    kind: ActionKind = ActionKind.BLOCK

    def apply(self, decision: Decision) -> ActionResult:
        return ActionResult(self.kind, ok=self.ok, detail="" if self.ok else "nft said no")


def _findings() -> list[Finding]:
    """Real findings from the labelled captures (scans, floods, ARP, BitTorrent)."""
    network = load_policy().policy.network
    out: list[Finding] = []
    for name in ("scans.pcap", "floods_dev.pcap", "arp_spoof_dev.pcap", "bittorrent.pcap"):
        if not (CORPUS / name).exists():
            pytest.skip(f"corpus capture {name} missing")
        out.extend(replay_file(CORPUS / name, network).findings)
    assert {f.kind for f in out} == {"scan", "flood", "arp-spoof", "bittorrent"}
    return out


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return _findings()


def _run(tmp_path: Path, findings: list[Finding], mode: str, block_ok: bool,
         ) -> list[dict[str, object]]:
    (tmp_path / "p.yaml").write_text(f"mode: {mode}\n")
    policy = load_policy([tmp_path / "p.yaml"]).policy
    sink = MemorySink()
    pipe = Pipeline(DecisionEngine(policy, FakeClock()), sink,
                    {ActionKind.BLOCK: _Block(block_ok)})
    for finding in findings:
        pipe.submit(finding)
    rows = [nest(record_fields(r, r.timestamp or 1.0, "gw-1")) for r in sink.records]
    for row in rows:  # the record contract, as the writer would write it
        row["event"]["sequence"], row["event"]["hash"] = 1, "0" * 64  # type: ignore[index]
        row["edgeguard"]["chain_id"] = "c"  # type: ignore[index]
        validate_record(row)
    return rows


def _types(rows: list[dict[str, object]]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(r["event"]["action"], tuple(r["event"]["type"]), r["event"]["outcome"])  # type: ignore[index]
            for r in rows]


def test_monitor_mode_never_says_denied(tmp_path: Path, findings: list[Finding]) -> None:
    rows = _run(tmp_path, findings, "monitor", block_ok=True)
    assert any("block" in r["edgeguard"].get("would_act", ()) for r in rows)  # type: ignore[attr-defined]
    assert all("denied" not in t for _, t, _ in _types(rows))
    assert all(r["event"]["kind"] == EventKind.ALERT.value for r in rows)  # type: ignore[index]


def test_enforce_says_denied_only_for_blocks_that_took_effect(
        tmp_path: Path, findings: list[Finding]) -> None:
    (tmp_path / "f").mkdir()
    failed = _types(_run(tmp_path / "f", findings, "enforce", block_ok=False))
    assert any(a == "block" and o == "failure" for a, _, o in failed)
    assert all("denied" not in t for _, t, _ in failed)

    (tmp_path / "s").mkdir()
    done = _types(_run(tmp_path / "s", findings, "enforce", block_ok=True))
    denied = [(a, o) for a, t, o in done if "denied" in t]
    assert denied
    assert set(denied) == {("block", "success")}
    assert len(denied) == sum(1 for a, _, _ in done if a == "block")


def test_every_record_names_its_module_dataset_and_observer(
        tmp_path: Path, findings: list[Finding]) -> None:
    rows = _run(tmp_path, findings, "enforce", block_ok=True)
    for row in rows:
        event = row["event"]
        assert event["module"] == "edgeguard"  # type: ignore[index]
        assert event["dataset"] == "edgeguard.network"  # type: ignore[index]
        assert row["observer"]["hostname"] == "gw-1"  # type: ignore[index]


@pytest.mark.parametrize("mode", ["monitor", "enforce"])
def test_wifi_refusal_says_denied_only_for_the_disconnect(tmp_path: Path, mode: str) -> None:
    """An open café network: the association record and the finding are facts; only the
    disconnect that happened (enforce) says denied. Old main wrote ["connection", "denied"]
    on both in monitor mode, where nothing was disconnected."""
    run = wifi_replay("cafe-open", tmp_path, mode=mode)
    denied = [(r.action, r.outcome) for r in run.sink.records if "denied" in r.event_type]
    if mode == "monitor":
        assert denied == []
    else:
        assert denied
        assert set(denied) == {("disconnect", Outcome.SUCCESS)}
    assert run.alerts()
