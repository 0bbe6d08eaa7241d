"""The kiosk component inside the real daemon process, over a fake sysfs tree: the
registry starts it, the pipeline runs its deauthorize action, the audit log holds
schema-valid records, and `edgeguard kiosk devices` answers over the control socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kiosk_fakesys import FakeSysfs

from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon
from tests.support.schema import validate_lines


@pytest.fixture
def kiosk_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, FakeSysfs]]:
    fake = FakeSysfs(tmp_path / "sys")
    fake.add_root_hub(1)
    fake.add_device("1-1", "keyboard-dell-kb216", authorized=True)
    # Present at start, authorised, but not in this boot's recorded set: a restart after
    # someone plugged an adapter.
    fake.add_device("1-2", "ethernet-asix-ax88179", authorized=True)
    state = tmp_path / "state"
    state.mkdir()
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (state / "kiosk-boot.json").write_text(json.dumps({"boot_id": boot_id, "devices": [
        {"bus_path": "1-1", "vendor_id": "413c", "product_id": "2113", "serial": None}]}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "mode: enforce\nmedia:\n  enabled: false\n"
        "rules:\n  - {id: kiosk-usb-refused, kind: usb-device, actions: [log, deauthorize]}\n"
        f"kiosk:\n  enabled: true\n  late_hid: block\n  sysfs_root: {tmp_path / 'sys'}\n"
        f"  rfkill_device: {tmp_path / 'no-rfkill'}\n")
    d = Daemon(tmp_path, policy)
    try:
        d.notify.wait_for("READY=1")
        yield d, fake
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_daemon_runs_the_kiosk(kiosk_daemon: tuple[Daemon, FakeSysfs]) -> None:
    d, fake = kiosk_daemon
    result = run_edgeguard(["kiosk", "devices", "--json", "--socket", str(d.sock)])
    assert result.returncode == 0, result.stderr
    rows = validate_lines(result.stdout)
    assert [(r["edgeguard"]["usb"]["bus_path"], r["edgeguard"]["usb"]["reason"])
            for r in rows] == [("1-1", "boot-device"), ("1-2", "vendor-class")]
    assert fake.read("usb1/authorized_default") == "0"
    assert fake.read("1-1/authorized") == "1"
    assert fake.read("1-2/authorized") == "0"
    status = d.status()
    kiosk = status["sources"]["kiosk"]  # type: ignore[index]
    assert kiosk["running"] is True
    assert kiosk["counters"]["usb_refused"] == 1
    assert d.stop() == 0
    records = validate_lines((d.audit / "audit.jsonl").read_bytes(), records=True)
    by_action = {r["event"]["action"]: r for r in records}
    assert by_action["usb-authorized-default"]["event"]["outcome"] == "success"
    assert by_action["usb-boot-device"]["event"]["outcome"] == "success"
    assert by_action["usb-device-vendor-class"]["rule"]["id"] == "kiosk-usb-refused"
    deauth = by_action["deauthorize"]
    assert deauth["event"]["outcome"] == "success"
    assert deauth["edgeguard"]["action"]["changed"] is True
    assert deauth["edgeguard"]["usb"]["vendor_id"] == "0b95"
