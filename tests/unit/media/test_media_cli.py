"""`edgeguard media` as a subprocess, without root or a daemon."""

from __future__ import annotations

import json

from media_harness import POLICY, UEVENTS

from tests.conftest import run_edgeguard


def test_replay_prints_the_records_it_would_write() -> None:
    out = run_edgeguard(["media", "replay", "--policy", str(POLICY), "--json",
                         str(UEVENTS / "03-trust-plaintext.json")])
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["event"]["action"] for r in records] == [
        "usb-read-only", "usb-read-only", "usb-not-encrypted", "usb-read-only"]
    assert all(r["volume"]["writable"] is False for r in records)
    assert "malformed 0" in out.stderr


def test_replay_rejects_a_bad_recording() -> None:
    out = run_edgeguard(["media", "replay", "/nonexistent.json"])
    assert out.returncode == 2
    assert "nonexistent" in out.stderr


def test_allow_needs_root_and_a_valid_duration() -> None:
    out = run_edgeguard(["media", "allow", "/dev/sdb", "--for", "2 fortnights",
                         "--reason", "x", "--socket", "/nonexistent.sock"])
    assert out.returncode in (1, 2)  # 1 when not root, 2 for the bad duration as root


def test_list_without_daemon_says_so() -> None:
    out = run_edgeguard(["media", "list", "--socket", "/nonexistent.sock"])
    assert out.returncode == 3  # no daemon
    assert "cannot reach edgeguard" in out.stderr
