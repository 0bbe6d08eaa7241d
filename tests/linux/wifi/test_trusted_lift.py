"""A replayed association to a trusted network lifts the real kill switch; leaving it
engages the switch again (real nftables, inside a namespace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wifi_netns import HERE, ROOT, Lab

pytestmark = pytest.mark.linux

RECORDING = ROOT / "tests" / "data" / "wifi" / "nl80211" / "trusted-then-leave.jsonl"
POLICY = """
mode: enforce
wifi:
  enabled: true
  approved_networks:
    - ssid: trust-staff
      bssids: ["02:00:00:00:03:03"]
      security: wpa2-enterprise
      trusted: true
  vpn:
    interfaces: ["wg*"]
"""


def test_trusted_network_lifts_and_leaving_engages(lab: Lab, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proc = lab.popen_py(lab.kiosk, str(HERE / "replay_in_ns.py"), str(RECORDING), str(policy),
                        stdin=True)
    assert proc.stdout is not None
    assert proc.stdin is not None
    out, inp = proc.stdout, proc.stdin

    def step() -> dict[str, object]:
        line = out.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        state: dict[str, object] = json.loads(line)
        return state

    def proceed() -> None:
        inp.write("\n")
        inp.flush()

    try:
        assert step()["engaged"] is True  # coldplug: not associated, fail closed
        assert not lab.ping("-I", "wlan0", "10.66.0.1")
        proceed()
        after_connect = step()
        assert after_connect["engaged"] is False
        assert "vpn-kill-switch-lift" in after_connect["actions"]  # type: ignore[operator]
        assert lab.ping("-I", "wlan0", "10.66.0.1")
        assert lab.delivered("10.66.0.1", 53)
        proceed()
        assert step()["engaged"] is True  # disconnected from the trusted network
        assert not lab.ping("-I", "wlan0", "10.66.0.1")
        proceed()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
