"""``edgeguard kiosk devices --offline`` as a real subprocess over a fake sysfs."""

from __future__ import annotations

import json
from pathlib import Path

from kiosk_fakesys import FakeSysfs

from tests.conftest import run_edgeguard
from tests.support.schema import validate_lines


def _tree(tmp_path: Path) -> Path:
    fake = FakeSysfs(tmp_path / "sys")
    fake.add_root_hub(1)
    fake.add_device("1-1", "keyboard-dell-kb216", authorized=True)
    fake.add_device("1-2", "tether-android-rndis")
    fake.add_device("1-3", "storage-sandisk-cruzer-blade")
    state = tmp_path / "state"
    state.mkdir()
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (state / "kiosk-boot.json").write_text(json.dumps({"boot_id": boot_id, "devices": [
        {"bus_path": "1-1", "vendor_id": "413c", "product_id": "2113", "serial": None}]}))
    return tmp_path


def test_offline_devices_json(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = run_edgeguard(["kiosk", "devices", "--offline", "--profile", "kiosk", "--json",
                            "--sysfs-root", str(root / "sys"), "--state-dir",
                            str(root / "state")])
    assert result.returncode == 0, result.stderr
    rows = validate_lines(result.stdout)
    got = {r["edgeguard"]["usb"]["bus_path"]: (r["edgeguard"]["usb"]["verdict"],
                                               r["edgeguard"]["usb"]["reason"]) for r in rows}
    assert got == {"1-1": ("allow", "boot-device"), "1-2": ("deny", "network-adapter"),
                   "1-3": ("allow", "allowed-classes")}
    # Offline never writes: the refused device is untouched, the boot set not re-recorded.
    assert (root / "sys/bus/usb/devices/1-3/authorized").read_text() == "0\n"


def test_offline_devices_table(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = run_edgeguard(["kiosk", "devices", "--offline", "--profile", "kiosk",
                            "--sysfs-root", str(root / "sys"), "--state-dir",
                            str(root / "state")])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("EDGEGUARD.USB.BUS_PATH")
    assert any("18d1:4ee3" in line and "network-adapter" in line for line in lines)


def test_bad_policy_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("kiosk:\n  late_hid: sometimes\n")
    result = run_edgeguard(["kiosk", "devices", "--offline", "--policy", str(bad)])
    assert result.returncode == 2
    assert "kiosk.late_hid" in result.stderr


def test_daemon_not_running(tmp_path: Path) -> None:
    result = run_edgeguard(["kiosk", "devices", "--socket", str(tmp_path / "none.sock")])
    assert result.returncode == 3  # no daemon
