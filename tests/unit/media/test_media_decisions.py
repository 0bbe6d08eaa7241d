"""Media verdicts go through the decision engine (issue 17), and a device the parser
refused is still audited and listed (issue 16 §4).

On the old main the media engine picked its rule ids from a hard-coded table and its
mode locally: a ``rules:`` entry for a ``usb`` finding had no effect, and a re-plugged
plaintext trust stick raised its ``not-encrypted`` alert again each time. A USB stick
whose strings held escape sequences was counted ``malformed`` and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from media_harness import POLICY, UEVENTS, Harness, harness

from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Peer
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import Mode
from edgeguard.findings import Area
from edgeguard.media.replay import replay
from edgeguard.media.service import MediaComponent
from edgeguard.media.source import load_recording
from edgeguard.policy.load import load_policy
from edgeguard.policy.model import Policy


def _policy(tmp_path: Path, rules: str) -> Policy:
    extra = tmp_path / "rules.yaml"
    extra.write_text(rules)
    return load_policy([POLICY, extra], require_safe=False).policy


def _wired(tmp_path: Path, policy: Policy) -> tuple[Harness, Pipeline]:
    """The media engine wired as the daemon wires it: decisions and the pipeline."""
    h = harness(tmp_path, config=policy.media)
    engine = DecisionEngine(policy, h.clock)
    pipeline = Pipeline(engine, h.sink)
    h.engine.decisions = engine
    h.engine._submit = pipeline.submit
    return h, pipeline


def test_a_rule_for_a_media_verdict_has_an_effect(tmp_path: Path) -> None:
    """A site holds trust sticks read-only for now: `mode: monitor` on trust-encrypted."""
    policy = _policy(tmp_path, "rules:\n  - {id: hold-trust-sticks, kind: usb, "
                               "subtype: trust-encrypted, mode: monitor}\n")
    h, _ = _wired(tmp_path, policy)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "02-trust-luks-partition.json"))
    luks = [f for f in h.fields() if f.get("volume.device_name") == "/dev/loop0p2"]
    assert luks[0]["rule.id"] == "hold-trust-sticks"
    assert luks[0]["edgeguard.mode"] == "monitor"
    assert h.kernel.read_only("loop0p2")  # not lifted: the rule's mode is monitor
    others = [f for f in h.fields() if f.get("volume.device_name") == "/dev/loop0p1"]
    assert others[0]["rule.id"] == "media-non-trust-read-only"  # the catalogue's default


def test_without_a_rule_the_default_rule_ids_and_media_mode_hold(tmp_path: Path) -> None:
    h, _ = _wired(tmp_path, _policy(tmp_path, "rules: []\n"))
    replay(h.engine, h.kernel, load_recording(UEVENTS / "02-trust-luks-partition.json"))
    luks = [f for f in h.fields() if f.get("volume.device_name") == "/dev/loop0p2"]
    assert luks[0]["rule.id"] == "media-trust-encrypted"
    assert luks[0]["edgeguard.mode"] == "enforce"
    assert not h.kernel.read_only("loop0p2")


def test_a_replugged_plaintext_trust_stick_alerts_once_per_window(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "rules:\n  - {id: plaintext-trust, kind: usb, "
                               "subtype: not-encrypted, severity: severe, "
                               "suppress_for: 1h}\n")
    h, pipeline = _wired(tmp_path, policy)
    bursts = load_recording(UEVENTS / "03-trust-plaintext.json")
    removes = [[dict(e, ACTION="remove") for e in reversed([e for b in bursts for e in b])]]
    for _ in range(3):  # plugged, pulled, plugged again...
        replay(h.engine, h.kernel, bursts)
        replay(h.engine, h.kernel, removes)
    alerts = [f for f in h.fields() if f["event.action"] == "usb-not-encrypted"]
    assert len(alerts) == 1
    assert alerts[0]["rule.id"] == "plaintext-trust"
    assert alerts[0]["event.severity"] == 3
    assert pipeline.suppressed == 2


ESC_MODEL = "Stick\x1b[2J\x1b]0;pwned\x07\x9b31m"


def _hostile_uevent() -> list[list[dict[str, Any]]]:
    data = json.loads((UEVENTS / "01-non-trust-add-remove.json").read_text())
    first = data["bursts"][0][0]
    return [[dict(first, ID_MODEL=ESC_MODEL)]]


def test_a_device_with_escape_sequences_is_audited_and_listed(tmp_path: Path) -> None:
    h = harness(tmp_path)
    replay(h.engine, h.kernel, _hostile_uevent())
    assert h.engine.counters.malformed == 1
    assert h.kernel.read_only("loop0")  # as the udev helper left it
    (record,) = h.fields()
    assert record["event.action"] == "usb-malformed"
    assert record["volume.device_name"] == "/dev/loop0"
    assert record["volume.writable"] is False
    assert record["rule.id"] == "media-malformed-read-only"
    name = str(record["volume.product_name"])
    assert name == "Stick\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m"
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in str(record["message"]))
    # a second event about the same device is not a second record
    replay(h.engine, h.kernel, _hostile_uevent())
    assert len(h.fields()) == 1

    component = MediaComponent(block=h.kernel)
    component.engine = h.engine
    rows = asyncio.run(component.cmd_list(Peer(pid=1, uid=0, gid=0), {}))
    (row,) = [r for r in rows if r.get("edgeguard.media.verdict") == "malformed"]
    assert row["volume.product_name"] == name
    assert row["volume.vendor_id"] == "0951"


def test_a_refused_device_leaves_the_list_when_removed(tmp_path: Path) -> None:
    h = harness(tmp_path)
    replay(h.engine, h.kernel, _hostile_uevent())
    assert len(list(h.engine.malformed_devices())) == 1
    gone = dict(_hostile_uevent()[0][0], ACTION="remove")
    replay(h.engine, h.kernel, [[gone]])
    assert list(h.engine.malformed_devices()) == []


def test_garbage_that_names_no_usb_device_is_only_counted(tmp_path: Path) -> None:
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[{"ACTION": "add", "SUBSYSTEM": "block"}, "not a mapping"]])
    assert h.engine.counters.malformed == 2
    assert h.sink.records == []


def test_the_engine_mode_is_only_a_fallback(tmp_path: Path) -> None:
    """Given the decision engine, the verdict's mode is the policy's, not the engine's."""
    policy = _policy(tmp_path, "rules: []\n")
    h = harness(tmp_path, config=policy.media, mode=Mode.MONITOR)
    h.engine.decisions = DecisionEngine(policy, FakeClock())
    replay(h.engine, h.kernel, load_recording(UEVENTS / "02-trust-luks-partition.json"))
    assert not h.kernel.read_only("loop0p2")  # lifted: the policy enforces


def test_a_rule_naming_a_media_action_is_carried_out(tmp_path: Path) -> None:
    """The catalogue says media provides read-only and deauthorize; a rule using them must
    not fail with "no component provides" (the old main had no media action provider)."""
    policy = _policy(tmp_path, "rules:\n  - {id: pull-plaintext-trust, kind: usb, "
                               "subtype: not-encrypted, actions: [log, read-only, deauthorize]}\n")
    h, pipeline = _wired(tmp_path, policy)
    pipeline.add_actions(MediaComponent(block=h.kernel).actions(), Area.MEDIA)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "03-trust-plaintext.json"))
    (ro,) = [f for f in h.fields() if f["event.action"] == "read-only"]
    assert ro["event.outcome"] == "success", ro
    assert ro["rule.id"] == "pull-plaintext-trust"
    assert ro["edgeguard.action.changed"] is False  # the verdict had it read-only already
    # the recorded sticks are loop devices: nothing to de-authorise, and the record says so
    (deauth,) = [f for f in h.fields() if f["event.action"] == "deauthorize"]
    assert deauth["event.outcome"] == "failure"
    assert deauth["error.message"] == "no USB interface to de-authorise"
