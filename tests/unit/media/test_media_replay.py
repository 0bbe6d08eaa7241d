"""Baseline tests generated from the recorded uevent sequences in tests/data/uevents/.

Each file carries its description and the expected result (records, kernel flags,
verdicts, counters); the recorded events go through the real engine against the
simulated kernel, without root. A few scenarios get extra, specific assertions below.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_harness import UEVENTS, Harness, harness

from edgeguard.media.replay import replay
from edgeguard.media.source import load_recording

RECORDINGS = sorted(UEVENTS.glob("*.json"))


def _run(tmp_path: Path, name: str) -> Harness:
    h = harness(tmp_path)
    replay(h.engine, h.kernel, load_recording(UEVENTS / name))
    return h


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_recording_matches_its_baseline(tmp_path: Path, path: Path) -> None:
    expect = json.loads(path.read_text())["expect"]
    h = harness(tmp_path)
    replay(h.engine, h.kernel, load_recording(path))
    assert h.actions() == expect["records"]
    assert {n: h.kernel.read_only(n) for n in expect["kernel_ro"]} == expect["kernel_ro"]
    assert {a.device.name: a.verdict.value for a in h.engine.devices()} == expect["verdicts"]
    counters = {k: v for k, v in h.engine.counters.as_dict().items() if v}
    assert counters == expect["counters"]


def test_there_are_enough_recordings() -> None:
    assert len(RECORDINGS) >= 10


def test_trust_luks_partition_fields(tmp_path: Path) -> None:
    h = _run(tmp_path, "02-trust-luks-partition.json")
    by_dev = {f["volume.device_name"]: f for f in h.fields()}
    luks = by_dev["/dev/loop0p2"]
    assert luks["event.action"] == "usb-write-allowed"
    assert luks["volume.writable"] is True
    assert luks["volume.file_system_type"] == "crypto_LUKS"
    assert luks["edgeguard.media.encryption"] == "luks2"
    assert luks["edgeguard.media.trust.device_id"] == "IT-0042"
    assert luks["edgeguard.media.trust.matched"] == ("vendor_id", "product_id", "serial")
    assert luks["volume.serial_number"] == "EGM-TRUST-0042"
    assert luks["volume.bus_type"] == "usb"
    plain = by_dev["/dev/loop0p1"]
    assert plain["event.action"] == "usb-read-only"
    assert plain["volume.writable"] is False
    assert h.kernel.read_only("loop0p1")
    assert not h.kernel.read_only("loop0p2")


def test_trust_plaintext_gives_not_encrypted_finding(tmp_path: Path) -> None:
    h = _run(tmp_path, "03-trust-plaintext.json")
    alerts = [f for f in h.fields() if f["event.action"] == "usb-not-encrypted"]
    assert len(alerts) == 1
    assert alerts[0]["event.kind"] == "alert"
    assert alerts[0]["edgeguard.media.trust.device_id"] == "IT-0043"
    assert alerts[0]["volume.writable"] is False
    assert all(h.kernel.read_only(n) for n in ("loop0", "loop0p1"))


def test_serial_match_with_wrong_vid_pid_is_not_trusted(tmp_path: Path) -> None:
    h = _run(tmp_path, "04-serial-match-wrong-vidpid.json")
    for f in h.fields():
        assert f["event.action"] == "usb-read-only"
        assert "edgeguard.media.trust.device_id" not in f
        assert f["edgeguard.media.trust.candidate"] == "IT-0042"
        assert f["edgeguard.media.trust.matched"] == ("serial",)
        assert f["edgeguard.media.trust.mismatched"] == ("vendor_id", "product_id")


def test_remove_during_evaluation_leaves_nothing_behind(tmp_path: Path) -> None:
    h = _run(tmp_path, "06-remove-during-evaluation.json")
    failed = [f for f in h.fields() if f["event.outcome"] == "failure"]
    assert len(failed) == 1
    assert "vanished" in str(failed[0]["error.message"])
    assert list(h.engine.devices()) == []
