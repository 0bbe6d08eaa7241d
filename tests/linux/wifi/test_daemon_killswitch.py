"""The real daemon in a namespace: the switch engages at start, holds through a SIGKILL,
is restored when someone deletes it, and `edgeguard wifi status` reports it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from wifi_netns import Lab

from tests.conftest import run_edgeguard
from tests.support.schema import validate_lines

pytestmark = pytest.mark.linux

POLICY = """
mode: enforce
wifi:
  enabled: true
  vpn:
    interfaces: ["wg*"]
    endpoints: ["10.66.0.1:51820"]
    verify_interval: 1s
"""


def wifi_status(sock: Path) -> tuple[int, list[dict[str, object]]]:
    done = run_edgeguard(["wifi", "status", "--json", "--socket", str(sock)], timeout=20)
    rows = validate_lines(done.stdout)
    return done.returncode, rows


def audit_actions(audit: Path) -> list[str]:
    lines = (audit / "audit.jsonl").read_text().splitlines()
    return [json.loads(line)["event"]["action"] for line in lines]


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {check}")


def test_daemon_engages_survives_sigkill_and_restores(lab: Lab, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    sock, audit = tmp_path / "control.sock", tmp_path / "audit"
    daemon = lab.popen_py(lab.kiosk, "-m", "edgeguard", "run", "--policy", str(policy),
                          "--audit-dir", str(audit), "--control-socket", str(sock),
                          "--state-dir", str(tmp_path / "state"))
    try:
        wait_for(lambda: sock.exists() and wifi_status(sock)[0] in (0, 1))
        code, rows = wifi_status(sock)
        switch = next(r for r in rows if "vpn" in r.get("edgeguard", {}))  # type: ignore[operator]
        ks = switch["edgeguard"]["vpn"]["kill_switch"]  # type: ignore[index]
        assert ks["engaged"] is True
        assert ks["wanted"] == "engaged"
        assert code == 0  # nothing refused, the switch is as the policy wants
        assert not lab.ping("-I", "wlan0", "10.66.0.1")
        assert lab.ping("-I", "wg0", "10.77.0.1")
        assert lab.delivered("10.66.0.1", 51820)

        # the VPN link going down is audited, and the switch holds
        lab.run(lab.kiosk, "ip", "link", "set", "wg0", "down")
        wait_for(lambda: "vpn-tunnel-down" in audit_actions(audit))
        assert not lab.ping("10.66.0.1")

        # someone deletes the table: it comes back (rtnl change or the 1 s timer)
        lab.run(lab.kiosk, "nft", "delete", "table", "inet", "edgeguard_vpn")
        wait_for(lambda: "vpn-kill-switch-restore" in audit_actions(audit))
        assert not lab.ping("-I", "wlan0", "10.66.0.1")

        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        listed = lab.run(lab.kiosk, "nft", "list", "table", "inet", "edgeguard_vpn")
        assert "policy drop" in listed.stdout
        assert not lab.ping("-I", "wlan0", "10.66.0.1")
        assert not lab.delivered("10.66.0.1", 53)
        actions = audit_actions(audit)
        records = validate_lines((audit / "audit.jsonl").read_bytes(), records=True)
        assert len(records) == len(actions)
        assert "vpn-kill-switch-engage" in actions
        assert "wifi-watcher-unavailable" in actions or "wifi-association" not in actions
    finally:
        if daemon.poll() is None:
            daemon.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=10)
