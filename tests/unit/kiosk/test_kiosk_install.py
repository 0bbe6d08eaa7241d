"""edgeguard install/uninstall into a temporary --root, and the commands it would run on
a live system (recorded by a fake runner, never executed here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from kiosk_fakesys import FakeSysfs

from edgeguard.install import Installer, InstallError
from edgeguard.policy.load import load_policy
from tests.conftest import run_edgeguard

RULES = "usr/lib/udev/rules.d"
UNIT = "usr/lib/systemd/system/edgeguard.service"
DROPIN = "etc/systemd/system/edgeguard.service.d/10-install.conf"
SHIP_UNIT = "usr/lib/systemd/system/edgeguard-ship.service"
SHIP_DROPIN = "etc/systemd/system/edgeguard-ship.service.d/10-install.conf"
UNITS = ["edgeguard.service", "edgeguard-ship.service"]
POLICY = "etc/edgeguard/policy.yaml"


def _actions(steps: Sequence[object]) -> dict[str, str]:
    return {s.target: s.action for s in steps}  # type: ignore[attr-defined]


def test_install_kiosk_puts_everything_in_place(tmp_path: Path) -> None:
    steps = Installer(tmp_path).install("kiosk", "/opt/eg/bin/edgeguard")
    assert (tmp_path / RULES / "60-edgeguard-kiosk.rules").read_text().count(
        'ATTR{authorized_default}="0"') == 1
    assert (tmp_path / RULES / "61-edgeguard-media.rules").exists()
    unit = (tmp_path / UNIT).read_text()
    assert "NoNewPrivileges=yes" in unit
    # every edgeguard command of the shipped unit, with this executable and the profile
    assert (tmp_path / DROPIN).read_text().splitlines()[1:] == [
        "[Service]",
        "ExecStartPre=", "ExecStartPre=+/opt/eg/bin/edgeguard prepare --profile kiosk",
        "ExecStart=",
        "ExecStart=/opt/eg/bin/edgeguard run --log-json --no-remote-shipping --profile kiosk"]
    assert (tmp_path / SHIP_DROPIN).read_text().splitlines()[-2:] == [
        "ExecStart=", "ExecStart=/opt/eg/bin/edgeguard audit ship --log-json --profile kiosk"]
    assert "CapabilityBoundingSet=\n" in (tmp_path / SHIP_UNIT).read_text()
    assert (tmp_path / "var/log/edgeguard").stat().st_mode & 0o7777 == 0o2750
    assert (tmp_path / "var/lib/edgeguard").stat().st_mode & 0o777 == 0o700
    assert _actions(steps)["systemctl/udevadm"] == "skipped"  # --root: nothing live
    manifest = json.loads((tmp_path / "var/lib/edgeguard/install.json").read_text())
    assert manifest["profile"] == "kiosk"
    assert sorted(manifest["files"]) == sorted(
        ["/" + UNIT, "/" + DROPIN, "/" + SHIP_UNIT, "/" + SHIP_DROPIN,
         f"/{RULES}/60-edgeguard-kiosk.rules",
         f"/{RULES}/61-edgeguard-media.rules",
         f"/{RULES}/72-edgeguard-media-uaccess.rules"])


def test_policy_template_is_a_valid_policy(tmp_path: Path) -> None:
    Installer(tmp_path).install("kiosk", "/usr/bin/edgeguard")
    text = (tmp_path / POLICY).read_text()
    assert "--profile kiosk" in text
    loaded = load_policy([tmp_path / POLICY], "kiosk", require_safe=False)
    assert loaded.policy.kiosk.enabled


def test_second_install_changes_nothing(tmp_path: Path) -> None:
    Installer(tmp_path).install("gateway", "/usr/bin/edgeguard")
    again = Installer(tmp_path).install("gateway", "/usr/bin/edgeguard")
    acts = {a for t, a in _actions(again).items() if t != "systemctl/udevadm"}
    assert acts == {"unchanged"}


def test_gateway_has_no_kiosk_rule_and_switching_removes_it(tmp_path: Path) -> None:
    Installer(tmp_path).install("kiosk", "/usr/bin/edgeguard")
    steps = Installer(tmp_path).install("gateway", "/usr/bin/edgeguard")
    assert not (tmp_path / RULES / "60-edgeguard-kiosk.rules").exists()
    assert _actions(steps)[f"/{RULES}/60-edgeguard-kiosk.rules"] == "removed"
    assert "--profile gateway" in (tmp_path / DROPIN).read_text()
    assert "--profile gateway" in (tmp_path / POLICY).read_text()  # still our template


def test_admin_policy_is_never_overwritten_or_removed(tmp_path: Path) -> None:
    (tmp_path / "etc/edgeguard").mkdir(parents=True)
    (tmp_path / POLICY).write_text("mode: monitor\n")
    steps = Installer(tmp_path).install("kiosk", "/usr/bin/edgeguard")
    assert _actions(steps)["/" + POLICY] == "kept"
    steps = Installer(tmp_path).uninstall()
    assert (tmp_path / POLICY).read_text() == "mode: monitor\n"
    assert _actions(steps)["/" + POLICY] == "kept"


def test_uninstall_reverses_install_but_keeps_the_audit_log(tmp_path: Path) -> None:
    Installer(tmp_path).install("kiosk", "/usr/bin/edgeguard")
    (tmp_path / "var/log/edgeguard/audit.jsonl").write_text("{}\n")
    Installer(tmp_path).uninstall()
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["var/log/edgeguard/audit.jsonl"]
    assert not (tmp_path / "etc/edgeguard").exists()
    assert not (tmp_path / "etc/systemd/system/edgeguard.service.d").exists()
    Installer(tmp_path).uninstall(purge=True)
    assert not (tmp_path / "var/log/edgeguard").exists()


def test_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="unknown profile"):
        Installer(tmp_path).install("laptop", "/usr/bin/edgeguard")


def test_live_system_commands(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def runner(argv: Sequence[str]) -> int:
        calls.append(list(argv))
        return 0

    fake = FakeSysfs(tmp_path / "sys")
    fake.add_root_hub(1)
    (fake.devices / "usb1" / "authorized_default").write_text("0\n")
    Installer(tmp_path / "root", runner=runner, live=True,
              sysfs=tmp_path / "sys").install("kiosk", "/usr/bin/edgeguard")
    assert calls == [["udevadm", "control", "--reload"], ["systemctl", "daemon-reload"],
                     ["systemctl", "enable", "--now", *UNITS],
                     ["systemctl", "try-restart", *UNITS]]
    calls.clear()
    Installer(tmp_path / "root", runner=runner, live=True,
              sysfs=tmp_path / "sys").install("kiosk", "/usr/bin/edgeguard")
    assert ["systemctl", "try-restart", *UNITS] not in calls  # nothing changed
    calls.clear()
    steps = Installer(tmp_path / "root", runner=runner, live=True,
                      sysfs=tmp_path / "sys").uninstall()
    assert calls == [["systemctl", "disable", "--now", *UNITS],
                     ["systemctl", "daemon-reload"], ["udevadm", "control", "--reload"]]
    assert fake.read("usb1/authorized_default") == "1"  # the hold is lifted
    assert _actions(steps)["authorized_default=1"] == "ran"


def test_failed_tool_is_reported(tmp_path: Path) -> None:
    steps = Installer(tmp_path, runner=lambda argv: 1, live=True,
                      sysfs=tmp_path / "nosys").install("kiosk", "/usr/bin/edgeguard")
    assert _actions(steps)["systemctl daemon-reload"] == "failed"


def test_cli_install_json(tmp_path: Path) -> None:
    result = run_edgeguard(["install", "--profile", "kiosk", "--root", str(tmp_path),
                            "--exec", "/usr/bin/edgeguard", "--json"])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["file"]["path"] for r in rows if r["event"]["action"] == "install-created"} >= {
        "/" + UNIT, "/" + DROPIN, "/" + POLICY}
    result = run_edgeguard(["uninstall", "--root", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert "removed   /" + UNIT in result.stdout
