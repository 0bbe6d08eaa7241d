"""Decision (severity, mode, actions, repeat suppression) and the pipeline's records."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import MAX_SUPPRESSION_ENTRIES, DecisionEngine, effective_mode
from edgeguard.ecs import flatten, nest
from edgeguard.events import (
    ActionKind,
    ActionResult,
    Decision,
    Endpoint,
    EventKind,
    Finding,
    Mode,
    Outcome,
    Severity,
)
from edgeguard.findings import Area
from edgeguard.policy.load import load_policy
from tests.conftest import ROOT, run_edgeguard
from tests.unit.net.netdata import CORPUS


def finding(identifier: str = "10.0.0.7", kind: str = "scan", subtype: str = "syn",
            severity: Severity = Severity.MODERATE) -> Finding:
    return Finding(kind=kind, subtype=subtype, message=f"{identifier} scanned",
                   identifier=identifier, severity=severity,
                   source=Endpoint(ip=identifier, mac="02:00:00:00:00:07"),
                   destinations=(Endpoint(ip="10.0.0.5"), Endpoint(ip="10.0.0.6")),
                   transport="tcp", first_seen=1.0, last_seen=4.1, count=25)


def policy_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_policy([path]).policy


@dataclass
class FakeBlock:
    ok: bool = True
    calls: int = 0
    kind: ActionKind = ActionKind.BLOCK

    def apply(self, decision: Decision) -> ActionResult:
        self.calls += 1
        if not self.ok:
            raise RuntimeError("nft said no")
        return ActionResult(ActionKind.BLOCK, ok=True, detail="blocked for 3600s")


def test_rule_overrides_severity_mode_and_actions(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "mode: monitor\nrules:\n"
                         "  - {id: syn-scans, kind: scan, subtype: syn, severity: severe,"
                         " mode: enforce, actions: [log, block]}\n")
    engine = DecisionEngine(policy, FakeClock())
    d = engine.decide(finding())
    assert (d.rule_id, d.severity, d.mode) == ("syn-scans", Severity.SEVERE, Mode.ENFORCE)
    assert d.actions == (ActionKind.LOG, ActionKind.BLOCK)
    other = engine.decide(finding(subtype="fin", identifier="10.0.0.8"))
    assert other.rule_id == "port-scan"  # the default's rule: rules merge by id
    assert other.mode is Mode.MONITOR


def test_section_mode_applies_without_rule_mode(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "mode: monitor\nnetwork:\n  mode: enforce\n")
    d = DecisionEngine(policy, FakeClock()).decide(finding(kind="flood"))
    assert d.mode is Mode.ENFORCE


def test_repeats_are_suppressed_within_the_window(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = policy_from(tmp_path, "rules:\n  - {id: r, kind: scan, suppress_for: 60s}\n")
    engine = DecisionEngine(policy, clock)
    assert not engine.decide(finding()).suppressed
    clock.advance(59)
    assert engine.decide(finding()).suppressed
    assert not engine.decide(finding(identifier="10.0.0.9")).suppressed
    clock.advance(2)
    assert not engine.decide(finding()).suppressed
    assert engine.suppressed_count == 1


def test_suppression_table_is_bounded() -> None:
    engine = DecisionEngine(load_policy().policy, FakeClock())
    for i in range(MAX_SUPPRESSION_ENTRIES + 10):
        engine.decide(finding(identifier=f"h{i}"))
    assert engine.evicted_count == 10


def test_pipeline_monitor_records_would_be_action(tmp_path: Path) -> None:
    sink = MemorySink()
    block = FakeBlock()
    policy = policy_from(tmp_path, "mode: monitor\n")
    pipe = Pipeline(DecisionEngine(policy, FakeClock()), sink, {ActionKind.BLOCK: block})
    pipe.submit(finding(severity=Severity.SEVERE))
    assert block.calls == 0
    [alert] = sink.records
    assert alert.kind is EventKind.ALERT
    assert alert.fields["edgeguard.would_act"] == ("block",)
    assert alert.fields["edgeguard.finding.count"] == 25


@pytest.mark.parametrize("works", [True, False])
def test_pipeline_enforce_audits_action_outcome(tmp_path: Path, works: bool) -> None:
    sink = MemorySink()
    block = FakeBlock(ok=works)
    policy = policy_from(tmp_path, "mode: enforce\n")
    pipe = Pipeline(DecisionEngine(policy, FakeClock()), sink, {ActionKind.BLOCK: block})
    pipe.submit(finding(severity=Severity.SEVERE))
    pipe.submit(finding(severity=Severity.SEVERE))  # a repeat: not re-acted
    assert block.calls == 1
    alert, action = sink.records
    assert alert.kind is EventKind.ALERT
    assert action.action == "block"
    # "denied" only for a block that took effect; a failed one is info with outcome failure
    assert action.event_type == (("denied",) if works else ("info",))
    assert alert.event_type == ("info",)
    assert action.rule_id == "port-scan"
    assert action.outcome is (Outcome.SUCCESS if works else Outcome.FAILURE)
    if not works:
        assert action.fields["error.message"] == "RuntimeError: nft said no"
    assert pipe.counters()["suppressed"] == 1


def test_enforce_without_provider_is_a_recorded_failure(tmp_path: Path) -> None:
    sink = MemorySink()
    pipe = Pipeline(DecisionEngine(policy_from(tmp_path, "mode: enforce\n"), FakeClock()), sink)
    pipe.submit(finding(severity=Severity.SEVERE))
    assert sink.records[-1].outcome is Outcome.FAILURE
    assert "no component provides 'block'" in str(sink.records[-1].fields["error.message"])


def test_nest_and_flatten_are_inverse() -> None:
    dotted = {"event.action": "x", "event.type": ("a", "b"), "source.ip": "10.0.0.1"}
    nested = nest(dotted)
    assert nested == {"event": {"action": "x", "type": ["a", "b"]}, "source": {"ip": "10.0.0.1"}}
    assert flatten(nested) == {"event.action": "x", "event.type": ["a", "b"],
                               "source.ip": "10.0.0.1"}
    with pytest.raises(ValueError, match="collides"):
        nest({"a": 1, "a.b": 2})


def test_monitor_records_describe_the_would_be_change(tmp_path: Path) -> None:
    class Describing(FakeBlock):
        def describe(self, decision: Decision) -> str:
            return f"drop traffic of {decision.finding.identifier} for 3600 s"

    sink = MemorySink()
    pipe = Pipeline(DecisionEngine(policy_from(tmp_path, "mode: monitor\n"), FakeClock()), sink,
                    {ActionKind.BLOCK: Describing()})
    pipe.submit(finding(severity=Severity.SEVERE))
    assert sink.records[0].fields["edgeguard.would_change"] == (
        "drop traffic of 10.0.0.7 for 3600 s",)


def test_a_flood_of_repeats_becomes_one_summary(tmp_path: Path) -> None:
    from edgeguard.audit.aggregate import Aggregator  # noqa: PLC0415

    clock = FakeClock()
    sink = MemorySink()
    aggregator = Aggregator(sink, clock, window=60)
    pipe = Pipeline(DecisionEngine(policy_from(tmp_path, "mode: monitor\n"), clock), sink,
                    summariser=aggregator)
    for _ in range(500):
        pipe.submit(finding())
    assert len(sink.records) == 1  # the first alert; the repeats are pending
    assert aggregator.pending == 499  # repeated findings, not the probes they carried
    clock.advance(61)
    assert aggregator.flush() == 1
    summary = sink.records[-1]
    assert summary.fields["edgeguard.repeats.count"] == 499  # findings (issue 21)
    assert summary.fields["edgeguard.repeats.events"] == 499 * 25  # every probe still counted
    assert "499 repeated finding(s)" in summary.message
    assert summary.fields["edgeguard.repeats.sources"] == ("10.0.0.7",)
    assert summary.source is not None  # one actor: named as the source
    assert summary.source.ip == "10.0.0.7"
    assert len(sink.records) == 2


def test_a_summary_of_many_actors_names_no_single_source(tmp_path: Path) -> None:
    from edgeguard.audit.aggregate import Aggregator  # noqa: PLC0415

    clock = FakeClock()
    sink = MemorySink()
    aggregator = Aggregator(sink, clock, window=60)
    for ip in ("10.0.0.7", "10.0.0.8"):
        base = finding()
        aggregator.add(Decision(finding=replace(base, source=Endpoint(ip=ip)), rule_id="r",
                                mode=Mode.MONITOR, severity=base.severity, actions=()))
    aggregator.flush(force=True)
    summary = sink.records[-1]
    assert summary.fields["edgeguard.repeats.sources"] == ("10.0.0.7", "10.0.0.8")
    assert summary.source is None


# -- one mode function; replays never act (issue 17) ------------------------------------
ENFORCING = ("mode: enforce\nnetwork:\n  mode: enforce\nrules:\n"
             "  - {id: scans-enforced, kind: scan, mode: enforce, actions: [log, block]}\n")


@pytest.mark.parametrize(("text", "area", "want"), [
    ("mode: monitor\nmedia:\n  mode: monitor\n", Area.MEDIA, Mode.MONITOR),
    ("mode: monitor\nmedia:\n  mode: enforce\n", Area.MEDIA, Mode.ENFORCE),
    ("mode: monitor\n", Area.NETWORK, Mode.MONITOR),
    ("mode: enforce\nkiosk:\n  mode: monitor\n", Area.KIOSK, Mode.MONITOR),
    ("mode: enforce\n", Area.WIFI, Mode.ENFORCE),
])
def test_effective_mode_section_then_global(tmp_path: Path, text: str, area: Area,
                                            want: Mode) -> None:
    policy = policy_from(tmp_path, text)
    assert effective_mode(policy, area) is want
    assert effective_mode(policy, area, force_monitor=True) is Mode.MONITOR


def test_the_section_mode_comes_from_the_findings_area(tmp_path: Path) -> None:
    """Nobody passes "network" any more: a kiosk finding takes the kiosk section's mode."""
    policy = policy_from(tmp_path, "mode: monitor\nkiosk:\n  mode: enforce\n")
    engine = DecisionEngine(policy, FakeClock())
    assert engine.decide(finding()).mode is Mode.MONITOR
    kiosk = engine.decide(finding(kind="usb-device", subtype="late-hid"))
    assert kiosk.mode is Mode.ENFORCE
    # a severity default the area cannot carry out (block, for a kiosk) is not asked for
    severe = engine.decide(finding("x", kind="usb-device", subtype="late-hid",
                                   severity=Severity.SEVERE))
    assert ActionKind.BLOCK not in severe.actions


def test_forced_monitor_wins_over_rule_and_section(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, ENFORCING)
    assert DecisionEngine(policy, FakeClock()).decide(finding()).mode is Mode.ENFORCE
    forced = DecisionEngine(policy, FakeClock(), force_monitor=True).decide(finding())
    assert forced.mode is Mode.MONITOR


def test_replay_audit_with_an_enforce_policy_writes_no_enforce_or_action_record(
        tmp_path: Path) -> None:
    """Old main: `section_modes` was never read, so a replay under this policy wrote
    failed `block` records in `mode: enforce` into a trail the help says never acts."""
    pcap = CORPUS / "masscan.pcap"
    if not pcap.exists():
        pytest.skip("capture corpus not present")
    policy = tmp_path / "p.yaml"
    policy.write_text(ENFORCING)
    audit = tmp_path / "audit"
    result = run_edgeguard(["replay", str(pcap), "--policy", str(policy), "--audit",
                            str(audit)], timeout=300)
    assert result.returncode == 1, result.stderr  # findings were made
    records = [orjson.loads(line) for line in (audit / "audit.jsonl").read_bytes().splitlines()]
    alerts = [r for r in records if r.get("event", {}).get("kind") == "alert"]
    assert alerts
    assert all(r["edgeguard"]["mode"] == "monitor" for r in alerts)
    assert all(r["edgeguard"]["would_act"] == ["block"] for r in alerts)
    assert not [r for r in records if r.get("edgeguard", {}).get("mode") == "enforce"]
    assert not [r for r in records if r.get("event", {}).get("action") == "block"]


def test_media_replay_never_enforces(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("mode: enforce\nmedia:\n  mode: enforce\n")
    recording = ROOT / "tests" / "data" / "uevents" / "01-non-trust-add-remove.json"
    result = run_edgeguard(["media", "replay", str(recording), "--policy", str(policy),
                            "--json"], timeout=120)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    modes = {r["edgeguard"]["mode"] for r in records if "mode" in r.get("edgeguard", {})}
    assert modes == {"monitor"}


def test_a_suppressed_refusal_is_refused_again_without_a_second_alert(tmp_path: Path) -> None:
    """Zeek-style per-type suppression: the catalogue marks Wi-Fi/kiosk refusals
    "reapply on repeat", so the pipeline acts again; a network repeat is not re-acted."""
    sink = MemorySink()
    deauth = FakeBlock(kind=ActionKind.DEAUTHORIZE)
    block = FakeBlock()
    policy = policy_from(tmp_path, "mode: enforce\nrules:\n"
                         "  - {id: refuse, kind: usb-device, actions: [log, deauthorize]}\n")
    pipe = Pipeline(DecisionEngine(policy, FakeClock()), sink,
                    {ActionKind.DEAUTHORIZE: deauth, ActionKind.BLOCK: block})
    for _ in range(3):
        pipe.submit(finding("dev", kind="usb-device", subtype="late-hid"))
        pipe.submit(finding(severity=Severity.SEVERE))
    assert deauth.calls == 3
    assert block.calls == 1
    alerts = [r for r in sink.records if r.kind is EventKind.ALERT]
    assert len(alerts) == 2


def test_an_action_is_looked_up_in_the_findings_area_first(tmp_path: Path) -> None:
    """Media and kiosk both de-authorise, each its own devices: a kiosk finding must
    reach the kiosk's action even when media registered one after it."""
    sink = MemorySink()
    kiosk, media = FakeBlock(kind=ActionKind.DEAUTHORIZE), FakeBlock(kind=ActionKind.DEAUTHORIZE)
    policy = policy_from(tmp_path, "mode: enforce\nrules:\n"
                         "  - {id: refuse, kind: usb-device, actions: [log, deauthorize]}\n")
    pipe = Pipeline(DecisionEngine(policy, FakeClock()), sink)
    pipe.add_actions({ActionKind.DEAUTHORIZE: kiosk}, Area.KIOSK)
    pipe.add_actions({ActionKind.DEAUTHORIZE: media}, Area.MEDIA)
    pipe.submit(finding("dev", kind="usb-device", subtype="late-hid"))
    assert (kiosk.calls, media.calls) == (1, 0)


# -- issue 21: unblock resets suppression; per-rule exceptions -------------------------

def test_forget_ends_the_suppression_of_one_finding(tmp_path: Path) -> None:
    engine = DecisionEngine(policy_from(tmp_path, "mode: enforce\n"), FakeClock())
    assert not engine.decide(finding()).suppressed
    assert engine.decide(finding()).suppressed
    assert engine.decide(finding("10.0.0.8")).suppressed is False
    assert engine.forget("scan", "10.0.0.7") is True
    assert not engine.decide(finding()).suppressed  # acted on again
    assert engine.decide(finding("10.0.0.8")).suppressed  # the other host's window holds
    assert engine.forget("scan", "10.9.9.9") is False


EXCEPTED = """mode: enforce
exceptions:
  - id: inventory-scanner
    rule: port-scan
    address: 10.0.0.0/29
    until: {until}
    reason: "IT's inventory scanner, ticket 4711"
"""


def _iso(when: float) -> str:
    import datetime  # noqa: PLC0415

    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_exception_logs_only_its_rule_and_hosts_until_it_expires(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = MemorySink()
    policy = policy_from(tmp_path, EXCEPTED.format(until=_iso(clock.now() + 3600)))
    engine = DecisionEngine(policy, clock, audit=sink)
    assert [r.action for r in sink.records] == ["policy-exception-added"]
    added = sink.records[0]
    assert added.fields["edgeguard.exception.id"] == "inventory-scanner"
    assert added.fields["event.reason"] == "IT's inventory scanner, ticket 4711"

    severe = finding(severity=Severity.SEVERE)
    covered = engine.decide(severe)
    assert covered.rule_id == "port-scan"
    assert covered.actions == (ActionKind.LOG,)
    assert covered.exception == "inventory-scanner"
    outside = engine.decide(replace(severe, identifier="10.0.0.9",
                                    source=Endpoint(ip="10.0.0.9")))
    assert outside.actions == (ActionKind.LOG, ActionKind.BLOCK)  # not in 10.0.0.0/29
    other_rule = engine.decide(finding(kind="flood", subtype="syn-flood",
                                       severity=Severity.SEVERE))
    assert ActionKind.BLOCK in other_rule.actions  # only port-scan is excepted

    clock.advance(3601)
    assert engine.decide(severe).actions == (ActionKind.LOG, ActionKind.BLOCK)  # expired
    engine.tick()
    engine.tick()  # audited once
    assert [r.action for r in sink.records] == ["policy-exception-added",
                                                "policy-exception-expired"]


def test_an_excepted_finding_does_not_start_the_acted_on_window(tmp_path: Path) -> None:
    """Review defect: excepted findings used to record the host's suppression window, so
    after the exception expired the next scans within suppress_for were "repeats" and
    nothing was blocked for up to 10 minutes."""
    clock = FakeClock()
    policy = policy_from(tmp_path, EXCEPTED.format(until=_iso(clock.now() + 60)))
    engine = DecisionEngine(policy, clock)
    severe = finding(severity=Severity.SEVERE)
    assert not engine.decide(severe).suppressed
    assert engine.decide(severe).suppressed  # excepted repeats are still de-duplicated
    clock.advance(59)
    engine.decide(severe)
    clock.advance(2)  # expired, one second after the last excepted finding
    after = engine.decide(severe)
    assert after.exception == ""
    assert not after.suppressed
    assert ActionKind.BLOCK in after.actions


def test_a_removed_exception_leaves_no_suppression_behind(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = policy_from(tmp_path, EXCEPTED.format(until=_iso(clock.now() + 3600)))
    engine = DecisionEngine(policy, clock)
    severe = finding(severity=Severity.SEVERE)
    assert engine.decide(severe).exception == "inventory-scanner"
    engine.reload(policy_from(tmp_path, "mode: enforce\n"))  # `net allow` file deleted
    after = engine.decide(severe)
    assert not after.suppressed
    assert ActionKind.BLOCK in after.actions
    assert engine.decide(severe).suppressed  # the acted-on window starts now


def test_an_excepted_finding_is_recorded_with_the_exception(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = MemorySink()
    block = FakeBlock()
    policy = policy_from(tmp_path, EXCEPTED.format(until=_iso(clock.now() + 3600)))
    pipe = Pipeline(DecisionEngine(policy, clock), sink, {ActionKind.BLOCK: block})
    pipe.submit(finding(severity=Severity.SEVERE))
    assert block.calls == 0  # the exception kept the block from being made
    (alert,) = sink.records
    assert alert.fields["edgeguard.exception.id"] == "inventory-scanner"
    assert alert.fields["edgeguard.actions"] == ("log",)


def test_reload_audits_exceptions_removed_and_added(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = MemorySink()
    until = _iso(clock.now() + 3600)
    engine = DecisionEngine(policy_from(tmp_path, EXCEPTED.format(until=until)), clock,
                            audit=sink)
    engine.reload(policy_from(tmp_path, EXCEPTED.format(until=until)))  # unchanged
    assert len(sink.records) == 1
    engine.reload(policy_from(tmp_path, "mode: enforce\n"))
    assert sink.records[-1].action == "policy-exception-removed"
    stale = EXCEPTED.format(until=_iso(clock.now() - 60))
    engine.reload(policy_from(tmp_path, stale))  # loaded already past its expiry
    assert sink.records[-1].action == "policy-exception-expired"
    assert engine.decide(finding(severity=Severity.SEVERE)).exception == ""


@pytest.mark.parametrize(("text", "message"), [
    ("exceptions:\n  - {id: a, rule: port-scn, address: 10.0.0.7, "
     "until: '2030-01-01T00:00:00Z', reason: x}\n", "no rule 'port-scn' (did you mean"),
    ("exceptions:\n  - {id: a, rule: port-scan, address: 10.0.0.7, "
     "until: '2030-01-01T00:00:00', reason: x}\n", "has no time zone"),
    ("exceptions:\n  - {id: a, rule: port-scan, address: 10.0.0.7/8, "
     "until: '2030-01-01T00:00:00Z', reason: x}\n", "host bits set"),
    ("exceptions:\n  - {id: a, rule: port-scan, address: 10.0.0.7, "
     "until: '2030-01-01T00:00:00Z'}\n", "an exception needs"),
])
def test_a_bad_exception_is_a_file_line_error(tmp_path: Path, text: str, message: str) -> None:
    from edgeguard.policy.load import PolicyError  # noqa: PLC0415

    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy([path])
    assert f"{path}:" in str(caught.value)
    assert message in str(caught.value)


def test_exceptions_merge_by_id_across_drop_ins(tmp_path: Path) -> None:
    first, second = tmp_path / "60-a.yaml", tmp_path / "60-b.yaml"
    for path, ident in ((first, "a"), (second, "b")):
        path.write_text(f"exceptions:\n  - {{id: {ident}, rule: port-scan, address: 10.0.0.7, "
                        "until: 2030-01-01T00:00:00Z, reason: x, "  # unquoted time too
                        "override_limits: true}\n")  # 2030 is beyond exception_limits
    policy = load_policy([first, second]).policy
    assert [e.id for e in policy.exceptions] == ["a", "b"]
