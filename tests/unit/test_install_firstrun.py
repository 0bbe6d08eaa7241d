"""Issue 20: a first run cannot go silently wrong.

Each trap a trust's IT manager fell into, as a test that failed on the old main:
the gateway profile enforced on a guessed ``eth1``; ``check`` said OK for an interface
the host does not have; a capture worker that could not start logged to stderr every
2.5 s and nothing else; ``status`` exited 0 while nothing was watched.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from edgeguard.daemon import run as daemon_run
from edgeguard.install import FIRST_RUN_MODE, policy_template
from edgeguard.policy.load import load_policy, shipped_policy
from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon

MISSING = "egnosuch0"  # an interface name no host has (<= 15 characters)


def _host_interface() -> str:
    """An interface this host has: not lo when there is another (lo is not suggested)."""
    names = sorted(name for _i, name in socket.if_nameindex())
    return next((n for n in names if n != "lo"), names[0])


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_gateway_profile_guesses_no_interface_and_does_not_enforce() -> None:
    _name, text = shipped_policy("gateway")
    loaded = load_policy([], "gateway", require_safe=False)
    assert loaded.policy.network.enabled
    assert loaded.policy.network.interfaces == ()
    assert b"eth1" not in text
    assert loaded.policy.mode.value == "monitor"


def test_starter_policy_runs_every_profile_in_monitor_mode(tmp_path: Path) -> None:
    assert FIRST_RUN_MODE == "monitor"
    for profile in (None, "default", "gateway", "kiosk"):
        path = tmp_path / f"{profile}.yaml"
        path.write_bytes(policy_template(profile))
        loaded = load_policy([path], profile, require_safe=False)
        assert loaded.policy.mode.value == "monitor", profile
        assert b"/usr/share/doc" not in policy_template(profile)  # nothing installs it


def test_check_fails_on_a_missing_interface_with_file_line_and_suggestions(
        tmp_path: Path) -> None:
    have = _host_interface()
    policy = _policy(tmp_path, f"network:\n  enabled: true\n  interfaces: [{have}, {MISSING}]\n")
    done = run_edgeguard(["check", "--policy", str(policy)])
    assert done.returncode == 2, done.stdout
    # line 3, column of the list item naming the missing interface
    col = len("  interfaces: [") + len(have) + 2 + 1
    assert f"{policy}:3:{col}: network.interfaces: no interface '{MISSING}'" in done.stderr
    suggested = done.stderr.split("(it has: ", 1)[1].split(")", 1)[0].split(", ")
    assert have in suggested or have == "lo"  # lo is never suggested
    assert MISSING not in suggested
    assert "1 error(s)" in done.stderr
    # the same policy for another machine, and a policy naming only what exists
    assert run_edgeguard(["check", "--no-host", "--policy", str(policy)]).returncode == 0
    good = _policy(tmp_path, f"network:\n  enabled: true\n  interfaces: [{have}]\n")
    assert run_edgeguard(["check", "--policy", str(good)]).returncode == 0


def test_check_gateway_profile_fails_until_the_interface_is_set(tmp_path: Path) -> None:
    empty = _policy(tmp_path, "version: 1\n")
    done = run_edgeguard(["check", "--profile", "gateway", "--policy", str(empty)])
    assert done.returncode == 2
    assert "<embedded gateway.yaml>:" in done.stderr
    assert "network.interfaces: the network watch is enabled but names no interface" \
        in done.stderr
    named = _policy(tmp_path, f"network:\n  interfaces: [{_host_interface()}]\n")
    assert run_edgeguard(["check", "--profile", "gateway", "--policy",
                          str(named)]).returncode == 0


def _records(daemon: Daemon, action: str) -> list[dict[str, object]]:
    return [r for r in daemon.records() if r["event"]["action"] == action]  # type: ignore[index]


def test_worker_that_cannot_start_is_audited_once_and_status_is_degraded(
        tmp_path: Path) -> None:
    policy = _policy(tmp_path, "mode: monitor\nmedia:\n  enabled: false\n"
                     f"network:\n  enabled: true\n  interfaces: [{MISSING}]\n")
    with Daemon.running(tmp_path, policy) as daemon:
        started = _records(daemon, "edgeguard-started")
        assert started[0]["edgeguard"]["mode"] == "monitor"  # type: ignore[index]
        assert "started in monitor mode" in str(started[0]["message"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # at least two restarts of the worker
            if daemon.status()["sources"]["network"]["counters"]["worker_errors"] >= 3:  # type: ignore[index]
                break
            time.sleep(0.5)
        status = daemon.status()
        assert status["sources"]["network"]["counters"]["worker_errors"] >= 3  # type: ignore[index]
        assert f"network {MISSING}#0" in status["degraded"]  # type: ignore[operator]
        failed = _records(daemon, "capture-worker-failed")
        assert len(failed) == 1  # once per cause, not once per restart
        assert failed[0]["event"]["outcome"] == "failure"  # type: ignore[index]
        assert MISSING in failed[0]["error"]["message"]  # type: ignore[index]
        text = run_edgeguard(["status", "--socket", str(daemon.sock)])
        assert text.returncode == 1
        assert "DEGRADED" in text.stdout
        assert f"degraded  network {MISSING}#0: " in text.stdout
        assert "monitor mode: decisions are audited, nothing is enforced" in text.stdout
        assert run_edgeguard(["status", "--json", "--socket",
                              str(daemon.sock)]).returncode == 1


def test_network_enabled_without_interfaces_is_degraded(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "media:\n  enabled: false\nnetwork:\n  enabled: true\n")
    with Daemon.running(tmp_path, policy) as daemon:
        assert "network" in daemon.status()["degraded"]  # type: ignore[operator]
        assert run_edgeguard(["status", "--socket", str(daemon.sock)]).returncode == 1


def test_healthy_daemon_status_exits_zero(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "media:\n  enabled: false\n")
    with Daemon.running(tmp_path, policy) as daemon:
        assert daemon.status()["degraded"] == {}
        assert run_edgeguard(["status", "--socket", str(daemon.sock)]).returncode == 0


def test_reload_reads_a_dropin_added_since_the_start(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Started on /etc/edgeguard's files (no --policy), a reload lists policy.d again:
    a new drop-in is read, a broken one refused (the package's `systemctl reload`)."""
    base = _policy(tmp_path, "media:\n  enabled: false\n")
    layers = [base]
    monkeypatch.setattr(daemon_run, "default_layers", lambda: list(layers))
    options = daemon_run.DaemonOptions(policy_files=(base,), rescan_etc=True,
                                       audit_dir=tmp_path / "audit",
                                       control_socket=tmp_path / "ctl.sock",
                                       state_dir=tmp_path / "state")
    daemon = daemon_run.Daemon(options, load_policy([base], require_safe=False))
    first = daemon.loaded.digest
    dropin = tmp_path / "50-lab.yaml"
    dropin.write_text("mode: enforce\n")
    layers.append(dropin)
    assert asyncio.run(daemon.reload())
    assert daemon.loaded.digest != first
    assert daemon.loaded.policy.mode.value == "enforce"
    broken = tmp_path / "60-broken.yaml"
    broken.write_text("media:\n  enabled: perhaps\n")
    layers.append(broken)
    kept = daemon.loaded.digest
    assert not asyncio.run(daemon.reload())
    assert daemon.loaded.digest == kept
    daemon.writer.close()
