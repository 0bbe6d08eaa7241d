"""What the media and Wi-Fi code relies on, proven on a real kernel: a hot-plugged QEMU
stick is a USB block device to udev, BLKROSET makes it refuse writes, dm-crypt opens and
writes a LUKS2 container on it, and mac80211_hwsim stations associate to hostapd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgelab import sticks, wifi
from edgelab.vm import LabVM

pytestmark = pytest.mark.lab
TOOLS = "/src/hardware/lab/tools"


def disk_info(lab: LabVM, serial: str, nparts: int = 0) -> dict:
    out = lab.run("/usr/bin/python3", f"{TOOLS}/blockinfo.py", serial, "40", str(nparts),
                  timeout=90)
    return json.loads(out.stdout)


def test_plugged_stick_is_a_usb_block_device_to_udev(lab: LabVM, tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "s.img", [sticks.Part("vfat", 40)])
    lab.plug_stick(img, serial="EGFACT0001")
    info = disk_info(lab, "EGFACT0001", 1)
    disk, part = info["disk"]["properties"], info["partitions"][0]["properties"]
    assert disk["ID_BUS"] == "usb"
    assert (disk["ID_VENDOR_ID"], disk["ID_MODEL_ID"]) == ("46f4", "0001")  # QEMU's ids
    assert disk["ID_SERIAL_SHORT"] == "EGFACT0001"
    assert part["ID_FS_TYPE"] == "vfat"
    assert part["ID_BUS"] == "usb"
    assert info["disk"]["sysfs_ro"] == 0  # stock udev rules leave it writable


def test_blkroset_makes_the_kernel_refuse_writes(lab: LabVM, tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "s.img", [sticks.Part("ext4", 40)])
    before = sticks.sha256(img)
    dev = lab.plug_stick(img, serial="EGFACT0002")
    info = disk_info(lab, "EGFACT0002", 1)
    disk, part = info["disk"]["node"], info["partitions"][0]["node"]
    lab.run("/usr/sbin/blockdev", "--setro", disk)
    lab.run("/usr/sbin/blockdev", "--setro", part)
    after = disk_info(lab, "EGFACT0002", 1)
    assert (after["disk"]["sysfs_ro"], after["disk"]["blkroget"]) == (1, 1)
    assert (after["partitions"][0]["sysfs_ro"], after["partitions"][0]["blkroget"]) == (1, 1)
    dd = lab.run("/bin/dd", "if=/dev/zero", f"of={part}", "bs=4096", "count=1",
                 "oflag=direct", check=False)
    assert dd.rc != 0
    assert "Operation not permitted" in dd.stderr or "Read-only" in dd.stderr
    mkfs = lab.run("/usr/sbin/mkfs.ext4", "-q", "-F", part, check=False)
    assert mkfs.rc != 0
    lab.run("/bin/mkdir", "-p", "/mnt/ro")
    mount_rw = lab.run("/bin/mount", "-o", "rw", part, "/mnt/ro", check=False)
    if mount_rw.rc == 0:  # util-linux falls back to a read-only mount: still no writes
        assert "ro" in lab.run("/usr/bin/findmnt", "-no", "OPTIONS", "/mnt/ro").stdout.split(",")
        assert lab.run("/usr/bin/touch", "/mnt/ro/x", check=False).rc != 0
        lab.run("/bin/umount", "/mnt/ro")
    lab.unplug(dev)
    assert sticks.sha256(img) == before


def test_luks2_container_opens_and_takes_writes(lab: LabVM, tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "s.img", [sticks.Part("luks", 32)])
    dev = lab.plug_stick(img, serial="EGFACT0003")
    info = disk_info(lab, "EGFACT0003", 1)
    part = info["partitions"][0]
    assert part["properties"]["ID_FS_TYPE"] == "crypto_LUKS"
    assert part["properties"]["ID_FS_VERSION"] == "2"
    lab.run("/usr/sbin/cryptsetup", "open", "--key-file", "-", part["node"], "eglab",
            input=sticks.LUKS_KEY, timeout=120)
    lab.run("/usr/sbin/mkfs.ext4", "-q", "/dev/mapper/eglab", timeout=120)
    lab.sh("mkdir -p /mnt/luks && mount /dev/mapper/eglab /mnt/luks && "
           "echo written-in-the-lab > /mnt/luks/proof && umount /mnt/luks")
    lab.run("/usr/sbin/cryptsetup", "close", "eglab")
    lab.unplug(dev)
    # re-plug the same image (a -blockdev backend survives device_del): the data is there
    lab.plug_stick(img, serial="EGFACT0003")
    part = disk_info(lab, "EGFACT0003", 1)["partitions"][0]
    lab.run("/usr/sbin/cryptsetup", "open", "--key-file", "-", part["node"], "eglab",
            input=sticks.LUKS_KEY, timeout=120)
    proof = lab.sh("mount -o ro /dev/mapper/eglab /mnt/luks && cat /mnt/luks/proof").stdout
    assert proof.strip() == "written-in-the-lab"
    assert b"written-in-the-lab" not in img.read_bytes()  # only ciphertext reached the disk


@pytest.mark.parametrize("name", ["open", "wpa2-psk", "wpa3-sae"])
def test_hwsim_station_associates(lab: LabVM, name: str) -> None:
    cls = wifi.CLASSES_BY_NAME[name]
    ap, sta_radio = wifi.hwsim(lab, 2)
    ssid = f"eglab-assoc-{name}"
    wifi.start_ap(lab, cls, ap, ssid=ssid)
    sta = wifi.start_station(lab, sta_radio, ssid=ssid, network=cls.station,
                             netns="eglab-sta")
    wifi.wait_connected(lab, sta, timeout=90)
    link = lab.run("/usr/sbin/ip", "netns", "exec", "eglab-sta", "/usr/sbin/iw", "dev",
                   sta_radio.iface, "link").stdout
    assert f"Connected to {ap.mac}" in link
    assert f"SSID: {ssid}" in link
