"""Kiosk lockdown on a real kernel: QEMU hot-plugs usb-kbd, usb-net and usb-storage into
the guest's xHCI; mac80211_hwsim radios appear in rfkill.

* the keyboard present before edgeguard starts is the boot set and keeps working;
* a usb-net adapter stays de-authorised: no interfaces, no network link;
* a keyboard plugged later is refused (kiosk profile: late_hid block);
* a stick is authorised for the media path, which then applies the kiosk media policy;
* with only the udev rule (daemon stopped) new devices are already held;
* an rfkill soft-unblock is reverted.

The real ``descriptors`` files of QEMU's devices are checked against the recorded
fixtures the unit tests use (tests/data/usb/qemu-*.json).
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgelab import sticks
from edgelab.daemon import GuestDaemon, install_udev_rules
from edgelab.vm import LabVM

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "kiosk"))

from kiosk_fakesys import load  # noqa: E402

from edgeguard.kiosk.usb import parse_descriptors  # noqa: E402

pytestmark = pytest.mark.lab

POLICY = "wifi:\n  enabled: false\n"
DEVICES = "/sys/bus/usb/devices"
LIST = r"""
for d in /sys/bus/usb/devices/*; do
  n=$(basename "$d"); case "$n" in *:*|usb*) continue;; esac
  printf '%s|%s|%s\n' "$n" "$(cat "$d/product" 2>/dev/null)" "$(cat "$d/authorized")"
done
"""


def devices(lab: LabVM) -> dict[str, tuple[str, str]]:
    out = {}
    for line in lab.sh(LIST).stdout.splitlines():
        name, product, authorized = line.split("|")
        out[name] = (product, authorized)
    return out


def wait_new(lab: LabVM, before: set[str], product: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, (prod, _auth) in devices(lab).items():
            if name not in before and prod == product:
                return name
        time.sleep(0.3)
    raise TimeoutError(f"no new USB device {product!r} in {timeout} s")


def attr(lab: LabVM, path: str) -> str:
    return lab.run("/bin/cat", path).stdout.strip()


def links(lab: LabVM) -> set[str]:
    out = lab.sh("ip -o link show").stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def usb(rec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = rec.get("edgeguard", {}).get("usb", {})
    return result


def action(name: str) -> Any:
    return lambda rec: rec["event"]["action"] == name


#: Undo the rfkill core's global soft-block state for every type (it outlives
#: mac80211_hwsim being unloaded and would leave later Wi-Fi tests' radios blocked).
UNBLOCK_ALL = (
    "import os, struct\n"
    "if os.path.exists('/dev/rfkill'):\n"
    "    fd = os.open('/dev/rfkill', os.O_RDWR)\n"
    "    os.write(fd, struct.pack('=IBBBB', 0, 0, 3, 0, 0))\n"  # CHANGE_ALL, type ALL
    "    os.close(fd)\n")


@pytest.fixture
def kiosk_lab(lab: LabVM) -> Iterator[LabVM]:
    """The guest; afterwards root hubs admit devices and radios are unblocked again
    (the shared reset does not know about either)."""
    try:
        yield lab
    finally:
        lab.sh("for h in /sys/bus/usb/devices/usb*; do echo 1 > $h/authorized_default; "
               "[ -e $h/interface_authorized_default ] && "
               "echo 1 > $h/interface_authorized_default || true; done")
        lab.py(UNBLOCK_ALL)


def test_kiosk_usb_authorisation(kiosk_lab: LabVM, tmp_path: Path) -> None:
    lab = kiosk_lab
    lab.plug_usb("usb-kbd", dev_id="bootkbd")
    boot = wait_new(lab, set(), "QEMU USB Keyboard")
    daemon = GuestDaemon(lab, POLICY, profile="kiosk")
    daemon.start()
    try:
        for hub in lab.sh("ls -d /sys/bus/usb/devices/usb*").stdout.split():
            assert attr(lab, f"{hub}/authorized_default") == "0"
        rec = daemon.wait_record(lambda r: action("usb-boot-device")(r)
                                 and usb(r)["bus_path"] == boot)
        assert rec["event"]["outcome"] == "success"

        before, net_before = set(devices(lab)), links(lab)
        lab.plug_usb("usb-net", dev_id="net1")
        net = wait_new(lab, before, "RNDIS/QEMU USB Network Device")
        rec = daemon.wait_record(lambda r: action("usb-device-network-adapter")(r)
                                 and usb(r)["bus_path"] == net)
        assert rec["rule"]["id"] == "kiosk-usb-refused"
        assert attr(lab, f"{DEVICES}/{net}/authorized") == "0"
        assert lab.sh(f"ls -d {DEVICES}/{net}:* 2>/dev/null || true").stdout == ""
        time.sleep(2)
        assert links(lab) == net_before  # no usb0/eth1 appeared
        real = parse_descriptors(lab.get(f"{DEVICES}/{net}/descriptors"))
        assert list(dict.fromkeys(i.triple for i in real.interfaces)) == \
            load("qemu-usb-net")["expected"]["triples"]

        before = set(devices(lab))
        lab.plug_usb("usb-kbd", dev_id="latekbd")
        late = wait_new(lab, before, "QEMU USB Keyboard")
        rec = daemon.wait_record(lambda r: action("usb-device-late-hid")(r)
                                 and usb(r)["bus_path"] == late)
        assert rec["event"]["severity"] == 3
        assert attr(lab, f"{DEVICES}/{late}/authorized") == "0"
        assert lab.sh(f"ls -d {DEVICES}/{late}:* 2>/dev/null || true").stdout == ""
        real = parse_descriptors(lab.get(f"{DEVICES}/{late}/descriptors"))
        assert [i.triple for i in real.interfaces] == \
            load("qemu-usb-kbd")["expected"]["triples"]

        # The boot keyboard is untouched and still driven by usbhid.
        assert attr(lab, f"{DEVICES}/{boot}/authorized") == "1"
        driver = lab.run("/bin/readlink", f"{DEVICES}/{boot}:1.0/driver").stdout
        assert driver.strip().endswith("usbhid")

        img = sticks.make_stick(tmp_path / "kiosk.img", [sticks.Part("vfat", 40)])
        before = set(devices(lab))
        lab.plug_stick(img, serial="EGKIOSK0001")
        stick = wait_new(lab, before, "QEMU USB HARDDRIVE")
        rec = daemon.wait_record(lambda r: action("usb-authorized")(r)
                                 and usb(r)["bus_path"] == stick)
        assert usb(rec)["classes"] == ["mass-storage"]
        daemon.wait_record(action("usb-blocked"))  # the media policy took over
    finally:
        daemon.stop()


def test_udev_rule_holds_devices_while_the_daemon_is_down(kiosk_lab: LabVM) -> None:
    lab = kiosk_lab
    install_udev_rules(lab, ["60-edgeguard-kiosk.rules"])
    lab.run("/usr/bin/udevadm", "trigger", "--action=add", "--subsystem-match=usb",
            "--property-match=DEVTYPE=usb_device")
    lab.run("/usr/bin/udevadm", "settle", "--timeout=30")
    for hub in lab.sh("ls -d /sys/bus/usb/devices/usb*").stdout.split():
        assert attr(lab, f"{hub}/authorized_default") == "0"
    before, net_before = set(devices(lab)), links(lab)
    lab.plug_usb("usb-net", dev_id="net2")
    net = wait_new(lab, before, "RNDIS/QEMU USB Network Device")
    lab.run("/usr/bin/udevadm", "settle", "--timeout=30")
    assert attr(lab, f"{DEVICES}/{net}/authorized") == "0"
    assert links(lab) == net_before
    daemon = GuestDaemon(lab, POLICY, profile="kiosk")
    daemon.start()  # coldplug judges what the rule held
    try:
        rec = daemon.wait_record(lambda r: action("usb-device-network-adapter")(r)
                                 and usb(r)["bus_path"] == net)
        assert rec["edgeguard"]["mode"] == "enforce"
        assert attr(lab, f"{DEVICES}/{net}/authorized") == "0"
    finally:
        daemon.stop()


UNBLOCK_ALL_WLAN = (
    "import os, struct\n"
    "fd = os.open('/dev/rfkill', os.O_RDWR)\n"
    "os.write(fd, struct.pack('=IBBBB', 0, 1, 3, 0, 0))\n"  # CHANGE_ALL wlan soft=0
    "os.close(fd)\n")


def soft_states(lab: LabVM) -> list[str]:
    out = lab.sh("for r in /sys/class/rfkill/rfkill*; do "
                 "[ \"$(cat $r/type)\" = wlan ] && cat $r/soft; done; true").stdout
    return out.split()


def test_rfkill_unblock_is_reverted(kiosk_lab: LabVM) -> None:
    lab = kiosk_lab
    lab.sh("modprobe mac80211_hwsim radios=2; udevadm settle")
    assert len(soft_states(lab)) == 2
    assert struct.calcsize("=IBBBB") == 8
    daemon = GuestDaemon(lab, POLICY + "kiosk:\n  block_radios: [wwan, wlan]\n",
                         profile="kiosk")
    daemon.start()
    try:
        daemon.wait_record(lambda r: action("rfkill-block-all")(r)
                           and r["edgeguard"]["rfkill"]["type"] == "wlan")
        deadline = time.monotonic() + 10
        while soft_states(lab) != ["1", "1"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert soft_states(lab) == ["1", "1"]
        lab.py(UNBLOCK_ALL_WLAN)
        rec = daemon.wait_record(action("rfkill-unblock-reverted"))
        assert rec["event"]["outcome"] == "success"
        assert rec["edgeguard"]["rfkill"]["type"] == "wlan"
        deadline = time.monotonic() + 10
        while soft_states(lab) != ["1", "1"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert soft_states(lab) == ["1", "1"]
    finally:
        daemon.stop()
