"""Phones and cameras (MTP/PTP): the udev rule de-authorises their interface; the daemon
audits each one naming the device, and a malformed or unmarked USB event is no record."""

from __future__ import annotations

from pathlib import Path

from media_harness import harness

from edgeguard.media.replay import replay

PHONE = {  # an Android phone in "file transfer" mode, after 61-edgeguard-media.rules
    "ACTION": "add", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0",
    "PRODUCT": "18d1/4ee1/440", "INTERFACE": "6/1/1", "TYPE": "0/0/0",
    "EDGEGUARD_MEDIA_KIND": "mtp", "EDGEGUARD_MEDIA": "blocked",
}


def test_blocked_phone_is_audited_with_its_identity(tmp_path: Path) -> None:
    h = harness(tmp_path)
    replay(h.engine, h.kernel, [[PHONE]])  # the rule de-authorises it, then the daemon reads
    (rec,) = h.fields()
    assert rec["event.action"] == "usb-mtp-blocked"
    assert (rec["edgeguard.usb.vendor_id"], rec["edgeguard.usb.product_id"]) == ("18d1",
                                                                                 "4ee1")
    assert rec["edgeguard.usb.bus_path"] == "1-4:1.0"
    assert rec["edgeguard.media.kind"] == "mtp"
    assert h.engine.counters.mtp == 1
    assert h.engine.counters.malformed == 0


def test_allowed_camera_is_audited_as_allowed(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.engine.handle_properties({**PHONE, "EDGEGUARD_MEDIA": "mtp-allowed",
                                "PRODUCT": "4a9/3218/2"})
    (rec,) = h.fields()
    assert rec["event.action"] == "usb-mtp-allowed"
    assert rec["edgeguard.usb.vendor_id"] == "04a9"


def test_other_or_malformed_usb_events_write_nothing(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for props in ({**PHONE, "EDGEGUARD_MEDIA_KIND": ""},  # not marked by the rule
                  {**PHONE, "ACTION": "remove"},
                  {**PHONE, "PRODUCT": "18d1/4ee1/440\x1b[2J"},
                  {**PHONE, "DEVPATH": "/devices/../../etc"}):
        h.engine.handle_properties(props)
    assert h.fields() == []
    assert h.engine.counters.malformed == 0


def test_a_phone_still_authorized_is_recorded_as_a_failure(tmp_path: Path) -> None:
    """The daemon reads ``authorized`` back: an interface udev did not de-authorise (the
    write failed, a rule reordered) is no success record."""
    h = harness(tmp_path)
    h.engine.handle_properties(PHONE)  # the simulated kernel never de-authorised it
    (rec,) = h.fields()
    assert rec["event.action"] == "usb-mtp-block-failed"
    assert rec["edgeguard.media.verdict"] == "block-failed"
    assert "still reads 1" in rec["error.message"]


def test_adb_interface_is_blocked_like_mtp(tmp_path: Path) -> None:
    h = harness(tmp_path)
    adb = {**PHONE, "DEVPATH": PHONE["DEVPATH"][:-1] + "1", "INTERFACE": "255/66/1"}
    replay(h.engine, h.kernel, [[adb]])
    (rec,) = h.fields()
    assert rec["event.action"] == "usb-mtp-blocked"
    assert rec["edgeguard.usb.interface_classes"] == ("255/66/1",)
