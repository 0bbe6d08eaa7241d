"""USB authorisation end to end over a fake sysfs: the files the kernel would see written,
and the audit records (outcome failure unless the write succeeded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiosk_fakesys import load
from kiosk_harness import Kiosk, kiosk_policy

from tests.support.schema import validate_record


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path))
    k.fake.add_root_hub(1)
    k.fake.add_root_hub(2)
    yield k
    k.close()


def _one(records: list[dict], action: str) -> dict:
    found = [r for r in records if r["event"]["action"] == action]
    assert len(found) == 1, [r["event"]["action"] for r in records]
    return found[0]


def test_start_closes_the_door_on_every_root_hub(kiosk: Kiosk) -> None:
    kiosk.start()
    assert kiosk.fake.read("usb1/authorized_default") == "0"
    assert kiosk.fake.read("usb2/authorized_default") == "0"
    rec = _one(kiosk.records(), "usb-authorized-default")
    assert rec["event"]["outcome"] == "success"
    assert rec["edgeguard"]["usb"]["authorized_default"] == "none"
    validate_record({**rec, "event": {**rec["event"], "sequence": 1, "hash": "0" * 64},
                     "edgeguard": {**rec["edgeguard"], "chain_id": "x"}})


def test_internal_only_writes_2(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  authorized_default: internal\n"))
    k.fake.add_root_hub(1)
    k.start()
    assert k.fake.read("usb1/authorized_default") == "2"
    k.close()


def test_boot_keyboard_and_mouse_are_recorded_and_kept(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.fake.add_device("1-1", "keyboard-dell-kb216", authorized=True)
    kiosk.fake.add_device("1-2", "mouse-logitech-m100", authorized=True)
    kiosk.start()
    assert kiosk.fake.read("1-1/authorized") == "1"
    assert kiosk.fake.read("1-2/authorized") == "1"
    boots = [r for r in kiosk.records() if r["event"]["action"] == "usb-boot-device"]
    assert sorted(r["edgeguard"]["usb"]["bus_path"] for r in boots) == ["1-1", "1-2"]
    assert all(r["event"]["outcome"] == "success" for r in boots)
    assert all(r["edgeguard"]["action"]["changed"] is False for r in boots)
    state = json.loads((tmp_path / "state" / "kiosk-boot.json").read_text())
    assert state["boot_id"] == "boot-1"
    assert [d["vendor_id"] for d in state["devices"]] == ["413c", "046d"]
    assert not [r for r in kiosk.records() if r["event"]["kind"] == "alert"]


def test_late_keyboard_is_blocked_and_reported(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.plug("2-1", "qemu-usb-kbd")
    assert kiosk.fake.read("2-1/authorized") == "0"
    alert = _one(kiosk.records(), "usb-device-late-hid")
    assert alert["event"]["kind"] == "alert"
    assert alert["rule"]["id"] == "kiosk-usb-refused"
    assert alert["event"]["severity"] == 3
    usb = alert["edgeguard"]["usb"]
    assert (usb["vendor_id"], usb["product_id"], usb["bus_path"]) == ("0627", "0001", "2-1")
    assert usb["interface_classes"] == ["03/01/01"]
    assert alert["device"]["serial_number"] == "68284-0000:00:04.0-1"
    action = _one(kiosk.records(), "deauthorize")
    assert action["event"]["outcome"] == "success"
    assert action["edgeguard"]["action"]["changed"] is False  # the kernel held it already
    assert not [r for r in kiosk.records() if r["event"]["action"] == "usb-authorized"]


def test_late_keyboard_flagged_when_policy_says_flag(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  late_hid: flag\n"))
    k.fake.add_root_hub(1)
    k.start()
    k.plug("1-3", "ducky-composite-hid-storage")
    assert k.fake.read("1-3/authorized") == "1"
    alert = _one(k.records(), "usb-device-hid-flagged")
    assert alert["rule"]["id"] == "kiosk-late-hid-flagged"
    assert alert["edgeguard"]["usb"]["flagged"] is True
    assert _one(k.records(), "usb-authorized")["event"]["outcome"] == "success"
    assert not [r for r in k.records() if r["event"]["action"] == "deauthorize"]
    k.close()


def test_network_adapter_present_at_restart_is_taken_out(kiosk: Kiosk, tmp_path: Path) -> None:
    # This boot's set was recorded before the adapter came: a restart must not promote it.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kiosk-boot.json").write_text(json.dumps(
        {"boot_id": "boot-1", "devices": []}))
    kiosk.fake.add_device("1-4", "tether-android-rndis", authorized=True)
    kiosk.start()
    assert kiosk.fake.read("1-4/authorized") == "0"
    action = _one(kiosk.records(), "deauthorize")
    assert action["event"]["outcome"] == "success"
    assert action["edgeguard"]["action"]["changed"] is True
    assert _one(kiosk.records(), "usb-device-network-adapter")["edgeguard"]["usb"][
        "refused_classes"] == ["network"]


def test_new_boot_records_a_new_set(kiosk: Kiosk, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kiosk-boot.json").write_text(json.dumps(
        {"boot_id": "old-boot", "devices": []}))
    kiosk.fake.add_device("1-1", "keyboard-dell-kb216", authorized=True)
    kiosk.start()
    assert kiosk.fake.read("1-1/authorized") == "1"
    assert _one(kiosk.records(), "usb-boot-device")


@pytest.mark.parametrize(("fixture", "reason"), [
    ("ethernet-asix-ax88179", "vendor-class"),
    ("ethernet-realtek-rtl8153", "network-adapter"),
    ("wifi-realtek-rtl8188eus", "vendor-class"),
    ("bluetooth-csr8510", "bluetooth"),
    ("qemu-usb-net", "network-adapter"),
])
def test_late_adapters_stay_out(kiosk: Kiosk, fixture: str, reason: str) -> None:
    kiosk.start()
    kiosk.plug("1-1", fixture)
    assert kiosk.fake.read("1-1/authorized") == "0"
    records = kiosk.records()
    assert _one(records, f"usb-device-{reason}")["event"]["type"] == ["info"]  # the fact
    refused = _one(records, "deauthorize")  # what was done about it: denied, and it held
    assert (refused["event"]["type"], refused["event"]["outcome"]) == (["denied"], "success")


def test_storage_and_hub_are_authorised_for_the_media_path(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.plug("1-1", "hub-genesys-gl850g")
    kiosk.plug("1-1.2", "storage-sandisk-cruzer-blade")
    assert kiosk.fake.read("1-1/authorized") == "1"
    assert kiosk.fake.read("1-1.2/authorized") == "1"
    recs = [r for r in kiosk.records() if r["event"]["action"] == "usb-authorized"]
    assert [r["edgeguard"]["usb"]["reason"] for r in recs] == ["allowed-classes"] * 2
    assert recs[1]["device"]["serial_number"] == "4C530001230825114294"


def test_someone_authorising_a_refused_device_is_reverted(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.plug("1-1", "qemu-usb-net")
    # root writes authorized=1 behind our back; the kernel configures the device and
    # announces its interfaces.
    (kiosk.fake.devices / "1-1" / "authorized").write_text("1\n")
    kiosk.fake.configure("1-1", load("qemu-usb-net"))
    assert kiosk.comp is not None
    assert kiosk.comp.usb is not None
    kiosk.comp.usb.on_uevent("add", "1-1:2.0", "usb_interface")
    assert kiosk.fake.read("1-1/authorized") == "0"
    changed = [r["edgeguard"]["action"]["changed"] for r in kiosk.records()
               if r["event"]["action"] == "deauthorize"]
    assert changed == [False, True]  # the second is a suppressed repeat, still enforced
    assert kiosk.comp.usb.counters.reverted == 1


def test_interface_granularity_keeps_the_storage_of_a_ducky(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  granularity: interface\n"))
    k.fake.add_root_hub(1)
    k.start()
    assert k.fake.read("usb1/interface_authorized_default") == "0"
    k.fake.add_device("1-2", "ducky-composite-hid-storage")
    # The kernel, once we authorise the device, creates interfaces unauthorised.
    k.fake.configure("1-2", load("ducky-composite-hid-storage"),
                     interface_default="0")
    assert k.comp is not None
    assert k.comp.usb is not None
    k.comp.usb.on_uevent("add", "1-2", "usb_device")
    assert k.fake.read("1-2/authorized") == "1"
    assert k.fake.read("1-2/1-2:1.1/authorized") == "1"  # storage: on to the media path
    assert k.fake.read("1-2/1-2:1.0/authorized") == "0"  # the keyboard: refused
    alert = _one(k.records(), "usb-device-late-hid")
    assert alert["edgeguard"]["usb"]["refused_interfaces"] == [0]
    k.close()


def test_monitor_mode_changes_nothing_it_would_refuse(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  mode: monitor\n"))
    k.fake.add_root_hub(1)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kiosk-boot.json").write_text(json.dumps(
        {"boot_id": "boot-1", "devices": []}))
    k.fake.add_device("1-1", "ethernet-asix-ax88179", authorized=True)
    k.start()
    assert k.fake.read("usb1/authorized_default") == "1"
    assert k.fake.read("1-1/authorized") == "1"
    alert = _one(k.records(), "usb-device-vendor-class")
    assert alert["edgeguard"]["would_act"] == ["deauthorize"]
    assert alert["edgeguard"]["mode"] == "monitor"
    k.close()


def test_device_gone_before_we_read_it_is_counted(kiosk: Kiosk) -> None:
    comp = kiosk.start()
    assert comp.usb is not None
    comp.usb.on_uevent("add", "1-9", "usb_device")
    comp.usb.on_uevent("add", "../../etc", "usb_device")
    assert comp.usb.counters.gone == 2
    assert comp.counters()["usb_events"] == 2


def test_reload_applies_a_new_allowlist(kiosk: Kiosk, tmp_path: Path) -> None:
    comp = kiosk.start()
    kiosk.plug("1-1", "ethernet-asix-ax88179")
    assert kiosk.fake.read("1-1/authorized") == "0"
    comp.reload(kiosk_policy(tmp_path, "  allowlist:\n    - {id: IT-7, vendor_id: 0b95, "
                             "product_id: '1790'}\n"))
    assert kiosk.fake.read("1-1/authorized") == "1"
    rec = [r for r in kiosk.records() if r["event"]["action"] == "usb-authorized"][-1]
    assert rec["edgeguard"]["usb"]["allowlist_id"] == "IT-7"


def test_devices_command_lists_last_verdicts(kiosk: Kiosk) -> None:
    kiosk.fake.add_device("1-1", "keyboard-dell-kb216", authorized=True)
    comp = kiosk.start()
    kiosk.plug("1-2", "bluetooth-csr8510")
    handler = comp.commands()["kiosk.devices"]
    rows = kiosk.loop.run_until_complete(handler(None, {}))  # type: ignore[arg-type]
    assert [(r["edgeguard.usb.bus_path"], r["edgeguard.usb.verdict"],
             r["edgeguard.usb.boot_device"]) for r in rows] == [
        ("1-1", "allow", True), ("1-2", "deny", False)]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(["add", "remove", "bind", "change", "", "\x00"]),
       name=st.one_of(st.sampled_from(["1-1", "1-1:1.0", "usb1", "1-1.2", "../1-1"]),
                      st.text(max_size=40)),
       devtype=st.one_of(st.none(), st.sampled_from(["usb_device", "usb_interface"]),
                         st.text(max_size=10)))
def test_fuzz_uevents_never_crash_nor_admit(kiosk: Kiosk, action: str, name: str,
                                            devtype: str | None) -> None:
    if kiosk.comp is None:
        kiosk.start()
        kiosk.plug("1-1", "qemu-usb-net")
    assert kiosk.comp is not None
    assert kiosk.comp.usb is not None
    kiosk.comp.usb.on_uevent(action, name, devtype)
    assert kiosk.fake.read("1-1/authorized") == "0"
