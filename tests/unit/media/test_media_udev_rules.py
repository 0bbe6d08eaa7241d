"""The shipped udev rules (rules/61, rules/72) evaluated on described devices: SCSI
passthrough nodes of every disk-like device are root's alone, a phone's or camera's
/dev/bus/usb node gets no console-user access, ADB is blocked like MTP, and an
exemption counts only on the port it was keyed on. The real udevd runs them in
tests/linux/media and the QEMU lab; this covers hardware neither has (sg, phones)."""

from __future__ import annotations

import pytest
from media_harness import ROOT
from udev_eval import Device, Parent, evaluate

RULE_61 = ROOT / "rules" / "61-edgeguard-media.rules"
RULE_72 = ROOT / "rules" / "72-edgeguard-media-uaccess.rules"
RULES = (RULE_61, RULE_72)
ATA = [Parent("pci"), Parent("scsi"), Parent("ata")]


def _sg(subsystem: str, scsi_type: str, bus: list[Parent],
        block_removable: str | None = None) -> Device:
    attrs = {"type": scsi_type, "vendor": "ATA"}
    if block_removable is not None:
        attrs["removable"] = block_removable  # not a scsi_device attribute, but be sure
    return Device(subsystem, "sg1" if subsystem == "scsi_generic" else "1:0:0:0",
                  {"DEVTYPE": ""}, [Parent(subsystem), Parent("scsi", attrs), *bus],
                  tags={"uaccess"} if scsi_type in ("4", "5") else set())


@pytest.mark.parametrize("subsystem", ["scsi_generic", "bsg"])
@pytest.mark.parametrize(("scsi_type", "bus"), [
    ("0", ATA),  # a disk on SATA: internal, or a removable-kind caddy/eSATA disk
    ("0", [Parent("pci"), Parent("nvme")]),
    ("7", ATA),  # optical memory
    ("14", ATA),  # reduced block commands
    ("5", ATA),  # SATA DVD writer
    ("0", [Parent("usb"), Parent("pci")]),
])
def test_passthrough_nodes_of_disk_like_devices_are_root_only(
        subsystem: str, scsi_type: str, bus: list[Parent]) -> None:
    out = evaluate(RULES, _sg(subsystem, scsi_type, bus))
    assert (out.owner, out.group, out.mode) == ("root", "root", "0600")
    assert out.env["EDGEGUARD_MEDIA"] == "no-passthrough"
    assert "uaccess" not in out.tags


@pytest.mark.parametrize("scsi_type", ["13", "3", "12"])  # enclosure, processor, RAID
def test_passthrough_nodes_of_other_scsi_devices_are_left_alone(scsi_type: str) -> None:
    out = evaluate(RULES, _sg("scsi_generic", scsi_type, ATA))
    assert (out.owner, out.mode) == (None, None)
    assert "EDGEGUARD_MEDIA" not in out.env


PHONE = {"DEVTYPE": "usb_device", "ID_VENDOR_ID": "18d1", "ID_MODEL_ID": "4ee1"}


def _usb_device(env: dict[str, str]) -> Device:
    # as 70-uaccess.rules left it: tagged for the console user
    return Device("usb", "1-4", {**PHONE, **env}, [Parent("usb"), Parent("pci")],
                  tags={"uaccess", "seat"})


@pytest.mark.parametrize("marks", [
    {"ID_MTP_DEVICE": "1"},
    {"ID_MEDIA_PLAYER": "1"},
    {"ID_GPHOTO2": "1"},
    {"ID_USB_INTERFACES": ":060101:"},  # PTP camera
    {"ID_USB_INTERFACES": ":ffff00:ff4201:"},  # Android with adb
])
def test_phone_and_camera_usb_nodes_get_no_console_user_access(marks: dict[str, str]) -> None:
    out = evaluate(RULES, _usb_device(marks))
    assert "uaccess" not in out.tags
    assert (out.owner, out.group, out.mode) == ("root", "root", "0600")


def test_allowed_phone_and_other_usb_devices_keep_their_access() -> None:
    allowed = evaluate(RULES, _usb_device({"ID_MTP_DEVICE": "1",
                                           "EDGEGUARD_MEDIA_MTP_ALLOW": "1"}))
    assert "uaccess" in allowed.tags
    assert allowed.mode is None
    keyboard = evaluate(RULES, _usb_device({"ID_USB_INTERFACES": ":030101:"}))
    assert "uaccess" in keyboard.tags
    assert keyboard.mode is None


def _interface(cls: str, sub: str, proto: str, env: dict[str, str] | None = None) -> Device:
    attrs = {"bInterfaceClass": cls, "bInterfaceSubClass": sub, "bInterfaceProtocol": proto,
             "interface": "ADB Interface" if cls == "ff" else ""}
    return Device("usb", "1-4:1.1", {"DEVTYPE": "usb_interface", **(env or {})},
                  [Parent("usb", attrs), Parent("usb")])


def test_adb_interface_is_blocked_unless_allowed() -> None:
    out = evaluate(RULES, _interface("ff", "42", "01"))
    assert out.attr_writes == {"authorized": "0"}
    assert (out.env["EDGEGUARD_MEDIA_KIND"], out.env["EDGEGUARD_MEDIA"]) == ("mtp", "blocked")
    allowed = evaluate(RULES, _interface("ff", "42", "01", {"EDGEGUARD_MEDIA_MTP_ALLOW": "1"}))
    assert allowed.attr_writes == {}
    assert allowed.env["EDGEGUARD_MEDIA"] == "mtp-allowed"
    other = evaluate(RULES, _interface("ff", "42", "03"))  # fastboot is not a file path
    assert other.attr_writes == {}


PORT3 = "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0"
PORT4 = "pci-0000:00:14.0-usb-0:4:1.0-scsi-0:0:0:0"


def _disk(env: dict[str, str]) -> Device:
    return Device("block", "sda", {"DEVTYPE": "disk", "ID_BUS": "usb", **env},
                  [Parent("block"), Parent("scsi"), Parent("usb")])


@pytest.mark.parametrize(("env", "exempt"), [
    ({"ID_PATH": PORT3, "EDGEGUARD_MEDIA_EXEMPT_PORT": PORT3}, True),
    ({"ID_PATH": PORT4, "EDGEGUARD_MEDIA_EXEMPT_PORT": PORT3}, False),  # clone, port 4
    ({"ID_PATH": PORT3, "EDGEGUARD_MEDIA_EXEMPT": "1"}, False),  # legacy serial-keyed
    ({"EDGEGUARD_MEDIA_EXEMPT_PORT": PORT3}, False),  # no port of its own
    ({"ID_PATH": PORT3, "EDGEGUARD_MEDIA_EXEMPT_PORT": ""}, False),
])
def test_exemption_counts_only_on_the_port_it_recorded(env: dict[str, str],
                                                       exempt: bool) -> None:
    out = evaluate(RULES, _disk(env))
    assert (out.run == []) is exempt
    assert out.env.get("EDGEGUARD_MEDIA") == ("exempt" if exempt else "read-only")
