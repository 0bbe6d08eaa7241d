"""The daemon as a real subprocess: sd_notify, status, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.audit.verify import verify_paths
from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon
from tests.support.schema import validate_lines

#: The daemon core alone: no component may see this machine's devices or interfaces.
CORE_ONLY = "media:\n  enabled: false\n"


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(CORE_ONLY + "mode: monitor\n")
    return path


@pytest.fixture
def daemon(tmp_path: Path, policy: Path) -> Iterator[Daemon]:
    with Daemon.running(tmp_path, policy, {"WATCHDOG_USEC": "200000"}) as d:
        yield d


def actions(records: list[dict[str, object]]) -> list[str]:
    return [r["event"]["action"] for r in records]  # type: ignore[index]


def test_ready_status_reload_and_stop(daemon: Daemon, policy: Path) -> None:
    first = daemon.status()
    assert first["pid"] == daemon.proc.pid
    assert first["mode"] == "monitor"
    digest = first["policy_digest"]

    daemon.notify.wait_for("WATCHDOG=1")  # WATCHDOG_USEC was set: pings arrive

    policy.write_text(CORE_ONLY + "mode: enforce\n")
    daemon.notify.messages.clear()
    daemon.proc.send_signal(signal.SIGHUP)
    msgs = daemon.notify.wait_for("READY=1")
    assert any("RELOADING=1" in m for m in msgs)
    second = daemon.status()
    assert second["policy_digest"] != digest
    assert second["mode"] == "enforce"
    assert second["reloads"] == 1

    policy.write_text("mode: enforce\nmedia:\n  enabled: perhaps\n")  # line 3, column 12
    daemon.notify.messages.clear()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("READY=1")
    third = daemon.status()
    assert third["policy_digest"] == second["policy_digest"]  # the running policy stays
    assert third["mode"] == "enforce"
    assert third["reload_failures"] == 1
    refused = [r for r in daemon.records() if r["event"]["action"] == "policy-reload-failed"]  # type: ignore[index]
    assert len(refused) == 1
    assert refused[0]["event"]["outcome"] == "failure"  # type: ignore[index]
    assert f"{policy}:3:12: media.enabled" in refused[0]["error"]["message"]  # type: ignore[index]

    assert daemon.stop() == 0
    daemon.notify.wait_for("STOPPING=1")
    result = verify_paths([daemon.audit])
    assert result.ok, result.problem
    assert actions(daemon.records()) == [
        "audit-segment-start", "edgeguard-started", "policy-reloaded",
        "policy-reload-failed", "edgeguard-stopped", "audit-checkpoint",
    ]


def test_restart_continues_the_chain(tmp_path: Path, policy: Path) -> None:
    for _ in range(2):
        d = Daemon(tmp_path, policy)
        d.notify.wait_for("READY=1")
        assert d.stop() == 0
        d.notify.sock.close()
        os.unlink(d.notify.path)
    result = verify_paths([tmp_path / "audit"])
    assert result.ok, result.problem
    # one segment header, then started/stopped and the shutdown checkpoint, twice
    assert result.records == 7


def test_bad_policy_at_start_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: sometimes\n")
    result = run_edgeguard(["run", "--policy", str(bad), "--audit-dir", str(tmp_path / "a"),
                            "--control-socket", str(tmp_path / "s")])
    assert result.returncode == 2
    assert f"{bad}:1:7: mode" in result.stderr
    assert not (tmp_path / "a").exists()  # nothing started


def test_status_without_daemon_is_a_clear_error(tmp_path: Path) -> None:
    result = run_edgeguard(["status", "--socket", str(tmp_path / "none.sock")])
    assert result.returncode == 3  # the one "no daemon" status of every command
    assert "cannot reach edgeguard" in result.stderr


def test_audit_records_follow_the_schema(tmp_path: Path, policy: Path) -> None:
    d = Daemon(tmp_path, policy)
    d.notify.wait_for("READY=1")
    d.proc.send_signal(signal.SIGHUP)
    d.notify.wait_for("READY=1")
    assert d.stop() == 0
    records = validate_lines((d.audit / "audit.jsonl").read_bytes(), records=True)
    assert len(records) == 5  # header, started, reloaded, stopped, shutdown checkpoint
    status = run_edgeguard(["check", str(policy)])
    assert status.returncode == 0
