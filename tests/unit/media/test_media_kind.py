"""Kind and removability of block devices from sample uevents (tests/unit/media/kinds/):
judged by bus and the kernel's/firmware's removable flags, never by what a device claims
about itself, and in step with the shipped udev rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from media_harness import ROOT, harness

from edgeguard.media.kind import MediaKind
from edgeguard.media.replay import replay
from edgeguard.media.uevent import parse_uevent

SAMPLES = json.loads((Path(__file__).parent / "kinds" / "samples.json").read_text())["samples"]
RULE = ROOT / "rules" / "61-edgeguard-media.rules"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["description"] for s in SAMPLES])
def test_sample_kind(sample: dict[str, object]) -> None:
    dev = parse_uevent(sample["properties"]).device
    assert dev.kind_name == sample["expect_kind"]
    assert dev.protected is (sample["expect_kind"] != "internal")


def test_every_kind_has_a_sample() -> None:
    seen = {s["expect_kind"] for s in SAMPLES}
    assert seen >= {k.value for k in MediaKind} - {"mtp"}  # MTP is no block device


def test_a_cloned_serial_does_not_make_a_stick_internal() -> None:
    """The system disk's serial and model on a USB stick: still usb, still protected."""
    by_desc = {s["description"]: parse_uevent(s["properties"]).device for s in SAMPLES}
    system = by_desc["internal SATA system disk"]
    clone = by_desc["USB stick cloning the system disk's ATA serial and model"]
    assert clone.serial == system.serial
    assert (system.protected, clone.protected) == (False, True)


def test_rule_kinds_are_known_and_protected() -> None:
    """Every kind the udev rule assigns is a MediaKind that the daemon tracks."""
    kinds = set(re.findall(r'ENV\{EDGEGUARD_MEDIA_KIND\}="([a-z]+)"', RULE.read_text()))
    assert kinds >= {"usb", "sd", "optical", "nvme", "firewire", "memstick", "removable"}
    assert all(MediaKind(k).protected for k in kinds)


def test_engine_tracks_an_sd_card_and_ignores_the_internal_disk(tmp_path: Path) -> None:
    h = harness(tmp_path)
    by_desc = {s["description"]: s["properties"] for s in SAMPLES}
    sd = by_desc["SD card in a built-in sdhci reader"]
    replay(h.engine, h.kernel, [[by_desc["internal SATA system disk"]], [sd]])
    records = h.fields()
    assert [(r["event.action"], r["volume.device_name"], r["edgeguard.media.kind"])
            for r in records] == [("usb-read-only", "/dev/mmcblk0", "sd")]
    assert records[0]["volume.bus_type"] == "sd"
    assert h.kernel.read_only("mmcblk0")
    assert not h.kernel.read_only("sda")
    assert h.engine.counters.ignored == 1


def _exempt_pair() -> tuple[dict[str, str], dict[str, str]]:
    """The exempt USB system disk on port 3 and a pupil's clone (serial and partition
    table copied) on port 4, as udev hands them over."""
    base = {"ACTION": "add", "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_BUS": "usb",
            "ID_VENDOR_ID": "0781", "ID_MODEL_ID": "5581", "ID_SERIAL_SHORT": "4C530001",
            "ID_PART_TABLE_TYPE": "gpt",
            "ID_PART_TABLE_UUID": "8a3c1f52-3b0e-4c7e-9d2b-7f1e0c9a4d11"}
    system = {**base, "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb2/2-3/2-3:1.0/host1/"
              "target1:0:0/1:0:0:0/block/sda", "DEVNAME": "/dev/sda",
              "ID_PATH": "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0",
              "EDGEGUARD_MEDIA_EXEMPT_PORT": "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0"}
    clone = {**base, "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb2/2-4/2-4:1.0/host2/"
             "target2:0:0/2:0:0:0/block/sdb", "DEVNAME": "/dev/sdb",
             "ID_PATH": "pci-0000:00:14.0-usb-0:4:1.0-scsi-0:0:0:0",
             "EDGEGUARD_MEDIA": "read-only", "EDGEGUARD_MEDIA_KIND": "usb"}
    return system, clone


def test_exempt_device_is_audited_and_a_clone_on_another_port_reported(
        tmp_path: Path) -> None:
    system, clone = _exempt_pair()
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[system], [clone]])
    actions = [(r["event.action"], r.get("volume.device_name")) for r in h.fields()]
    assert actions[0] == ("usb-exempt", "/dev/sda")
    moved = [r for r in h.fields() if r["event.action"] == "usb-exempt-identity-moved"]
    assert len(moved) == 1
    assert moved[0]["volume.device_name"] == "/dev/sdb"
    assert moved[0]["edgeguard.media.exempt_path"] == system["ID_PATH"]
    assert ("usb-read-only", "/dev/sdb") in actions
    assert (h.kernel.read_only("sda"), h.kernel.read_only("sdb")) == (False, True)


def test_serial_keyed_legacy_exemption_is_ignored_and_audited(tmp_path: Path) -> None:
    """An old exemption keyed on the serial (EDGEGUARD_MEDIA_EXEMPT=1) also matches the
    clone on another port: it exempts nothing (the clone, and a system disk exempted
    only that way, stay read-only), each is audited as an ignored exemption, and the
    exempt identity on the second port is reported."""
    system, clone = _exempt_pair()
    clone = {**clone, "EDGEGUARD_MEDIA_EXEMPT": "1"}
    legacy = {**system, "DEVPATH": system["DEVPATH"][:-3] + "sdc", "DEVNAME": "/dev/sdc",
              "ID_SERIAL_SHORT": "LEGACY01", "ID_PART_TABLE_UUID": "0000-legacy",
              "EDGEGUARD_MEDIA_EXEMPT": "1"}
    del legacy["EDGEGUARD_MEDIA_EXEMPT_PORT"]
    assert not parse_uevent(clone).device.exempt
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[system], [clone], [legacy]])
    actions = [(r["event.action"], r.get("volume.device_name")) for r in h.fields()]
    assert ("usb-exempt-identity-moved", "/dev/sdb") in actions
    assert ("usb-exempt-ignored", "/dev/sdb") in actions
    assert ("usb-exempt-ignored", "/dev/sdc") in actions
    assert ("usb-exempt", "/dev/sdb") not in actions
    assert (h.kernel.read_only("sda"), h.kernel.read_only("sdb"),
            h.kernel.read_only("sdc")) == (False, True, True)
    assert h.engine.counters.exempt == 1


def test_exemption_recorded_for_another_port_is_no_exemption(tmp_path: Path) -> None:
    """A rule that records a port without matching on it (hand-written, or keyed on a
    serial) exempts only the device actually on that port."""
    system, clone = _exempt_pair()
    clone = {**clone, "EDGEGUARD_MEDIA_EXEMPT_PORT": system["ID_PATH"]}
    dev = parse_uevent(clone).device
    assert (dev.exempt, dev.exempt_ignored) == (False, True)
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[clone]])
    assert h.kernel.read_only("sdb")


def test_exemption_without_a_port_is_no_exemption(tmp_path: Path) -> None:
    system, _ = _exempt_pair()
    del system["ID_PATH"]
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[system]])
    assert not parse_uevent(system).device.exempt
    assert h.kernel.read_only("sda")
