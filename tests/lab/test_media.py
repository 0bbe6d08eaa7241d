"""Removable media end to end on a real kernel: the shipped udev rules and the working
tree's daemon against hot-plugged USB sticks (issue 3's acceptance tests).

Skipped until the media rules (rules/*.rules) and component (edgeguard/media/service.py)
are in the tree under test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from edgelab import sticks
from edgelab.daemon import GuestDaemon, install_udev_rules
from edgelab.daemon import ecs_field as field
from edgelab.vm import LabVM

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
TOOLS = "/src/hardware/lab/tools"
RULES = sorted(p.name for p in (ROOT / "rules").glob("*.rules"))
HAVE_DAEMON_MEDIA = (ROOT / "edgeguard" / "media" / "service.py").exists()
needs_rules = pytest.mark.skipif(not RULES, reason="no udev rules in rules/ yet")
needs_daemon = pytest.mark.skipif(not (RULES and HAVE_DAEMON_MEDIA),
                                  reason="media component not in the tree yet")
QEMU_VID, QEMU_PID = "46f4", "0001"  # what QEMU's usb-storage reports


def disk_info(lab: LabVM, serial: str, nparts: int) -> dict[str, Any]:
    out = lab.run("/usr/bin/python3", f"{TOOLS}/blockinfo.py", serial, "60", str(nparts),
                  timeout=120)
    return json.loads(out.stdout)


def assert_read_only(info: dict[str, Any], *nodes: str) -> None:
    every = {n["node"]: n for n in [info["disk"], *info["partitions"]]}
    for node in nodes or tuple(every):
        assert (every[node]["sysfs_ro"], every[node]["blkroget"]) == (1, 1), node


def assert_writes_fail(lab: LabVM, node: str) -> None:
    dd = lab.run("/bin/dd", "if=/dev/zero", f"of={node}", "bs=4096", "count=1",
                 "oflag=direct", check=False)
    assert dd.rc != 0, dd.stdout
    assert lab.run("/usr/sbin/blkdiscard", node, check=False).rc != 0
    assert lab.run("/usr/sbin/wipefs", "-a", node, check=False).rc != 0
    lab.run("/bin/mkdir", "-p", "/mnt/stick")
    if lab.run("/bin/mount", "-o", "ro", node, "/mnt/stick", check=False).rc == 0:
        remount = lab.run("/bin/mount", "-o", "remount,rw", "/mnt/stick", check=False)
        opts = lab.run("/usr/bin/findmnt", "-no", "OPTIONS", "/mnt/stick").stdout
        assert remount.rc != 0 or "ro" in opts.strip().split(",")
        assert lab.run("/usr/bin/touch", "/mnt/stick/x", check=False).rc != 0
        lab.run("/bin/umount", "/mnt/stick")


STICKS = {
    "vfat": [sticks.Part("vfat", 40)],
    "ext4": [sticks.Part("ext4j", 40)],
    "exfat": [sticks.Part("exfat", 40)],
}


@needs_rules
@pytest.mark.parametrize("fs", sorted(STICKS))
def test_rule_alone_keeps_a_stick_read_only(lab: LabVM, tmp_path: Path, fs: str) -> None:
    """Daemon stopped: the shipped rule alone makes disk and partitions ro before any
    listener hears of them, every write path fails, and the image is unchanged."""
    install_udev_rules(lab, RULES)
    img = sticks.make_stick(tmp_path / f"{fs}.img", STICKS[fs])
    before = sticks.sha256(img)
    log = "/tmp/lab/uevents.jsonl"
    rec = lab.spawn("/usr/bin/python3", f"{TOOLS}/uevents.py", log, "block",
                    log="/tmp/lab/uevents.log")
    deadline = time.monotonic() + 30
    while '"ready"' not in lab.run("/bin/cat", log, check=False).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    dev = lab.plug_stick(img, serial=f"EGRO{fs.upper()}")
    info = disk_info(lab, f"EGRO{fs.upper()}", 1)
    assert_read_only(info)
    lab.kill(rec)
    events = [json.loads(x)["properties"] for x in lab.get(log).decode().splitlines()[1:]]
    first = next(e for e in events if e["DEVNAME"] == info["disk"]["node"])
    # udev runs RUN before it broadcasts: the very first event listeners see is ro already
    assert first["EDGEGUARD_MEDIA"] == "read-only"
    assert first.get("UDISKS_IGNORE") == "1"
    for part in info["partitions"]:
        assert_writes_fail(lab, part["node"])
    assert_writes_fail(lab, info["disk"]["node"])
    lab.unplug(dev)
    assert sticks.sha256(img) == before


def trust_policy(*serials: str) -> str:
    entries = "".join(
        f"    - id: lab-trust-{i}\n      vendor_id: \"{QEMU_VID}\"\n"
        f"      product_id: \"{QEMU_PID}\"\n      serial: \"{s}\"\n"
        for i, s in enumerate(serials))
    body = "mode: monitor\nmedia:\n  mode: enforce\n"
    return body + ("  trusted_devices:\n" + entries if serials else "")


def record_for(daemon: GuestDaemon, action: str, node: str, timeout: float = 90) -> dict:
    name = node.removeprefix("/dev/")
    return daemon.wait_record(
        lambda r: field(r, "event.action") == action
        and name in (field(r, "volume.device_name") or "").split("/"), timeout)


@needs_daemon
@pytest.mark.parametrize("fs", ["vfat", "ext4"])
def test_non_trust_stick_stays_read_only_with_daemon(lab: LabVM, tmp_path: Path,
                                                     fs: str) -> None:
    install_udev_rules(lab, RULES)
    daemon = GuestDaemon(lab, trust_policy())
    daemon.start()
    img = sticks.make_stick(tmp_path / "s.img", STICKS[fs])
    before = sticks.sha256(img)
    serial = f"EGNT{fs.upper()}"
    dev = lab.plug_stick(img, serial=serial)
    info = disk_info(lab, serial, 1)
    part = info["partitions"][0]["node"]
    rec = record_for(daemon, "usb-read-only", part)
    assert field(rec, "volume.serial_number") == serial
    assert field(rec, "volume.bus_type") == "usb"
    assert field(rec, "volume.writable") in (False, "false")
    assert_read_only(disk_info(lab, serial, 1))
    assert_writes_fail(lab, part)
    lab.unplug(dev)
    daemon.stop()
    assert sticks.sha256(img) == before


def luks_stick(tmp_path: Path) -> Path:
    return sticks.make_stick(tmp_path / "trust.img",
                             [sticks.Part("luks", 28), sticks.Part("vfat", 32)])


def assert_container_writable(lab: LabVM, luks_node: str) -> None:
    lab.run("/usr/sbin/cryptsetup", "open", "--key-file", "-", luks_node, "egtrust",
            input=sticks.LUKS_KEY, timeout=120)
    lab.run("/usr/sbin/mkfs.ext4", "-q", "/dev/mapper/egtrust", timeout=120)
    lab.sh("mkdir -p /mnt/trust && mount /dev/mapper/egtrust /mnt/trust && "
           "echo trust-write > /mnt/trust/proof && sync && cat /mnt/trust/proof && "
           "umount /mnt/trust")
    lab.run("/usr/sbin/cryptsetup", "close", "egtrust")


@needs_daemon
def test_trust_luks_container_is_writable_plaintext_stays_ro(lab: LabVM,
                                                             tmp_path: Path) -> None:
    install_udev_rules(lab, RULES)
    daemon = GuestDaemon(lab, trust_policy("EGTRUST01"))
    daemon.start()
    img = luks_stick(tmp_path)
    lab.plug_stick(img, serial="EGTRUST01")
    info = disk_info(lab, "EGTRUST01", 2)
    luks, plain = info["partitions"][0]["node"], info["partitions"][1]["node"]
    rec = record_for(daemon, "usb-write-allowed", luks)
    assert field(rec, "volume.serial_number") == "EGTRUST01"
    after = {p["node"]: p for p in disk_info(lab, "EGTRUST01", 2)["partitions"]}
    assert after[luks]["sysfs_ro"] == 0
    assert after[plain]["sysfs_ro"] == 1
    assert_container_writable(lab, luks)
    assert_writes_fail(lab, plain)
    daemon.stop()


@needs_daemon
def test_trust_plaintext_stick_read_only_and_not_encrypted(lab: LabVM, tmp_path: Path) -> None:
    install_udev_rules(lab, RULES)
    daemon = GuestDaemon(lab, trust_policy("EGTRUST02"))
    daemon.start()
    img = sticks.make_stick(tmp_path / "plain.img", [sticks.Part("vfat", 40)])
    before = sticks.sha256(img)
    dev = lab.plug_stick(img, serial="EGTRUST02")
    info = disk_info(lab, "EGTRUST02", 1)
    part = info["partitions"][0]["node"]
    alert = daemon.wait_record(lambda r: field(r, "event.action") == "usb-not-encrypted"
                               and field(r, "volume.serial_number") == "EGTRUST02")
    assert field(alert, "event.kind") == "alert"
    ro = record_for(daemon, "usb-read-only", part)
    assert "not encrypted" in str(field(ro, "edgeguard.media.reason"))
    assert_read_only(disk_info(lab, "EGTRUST02", 1))
    assert_writes_fail(lab, part)
    lab.unplug(dev)
    daemon.stop()
    assert sticks.sha256(img) == before


@needs_daemon
def test_stick_plugged_while_daemon_down_is_ro_then_coldplugged(lab: LabVM,
                                                                tmp_path: Path) -> None:
    """Fail closed while the daemon is down; at start, coldplug evaluates what is there
    (and lifts ro only for the trust container)."""
    install_udev_rules(lab, RULES)
    lab.plug_stick(luks_stick(tmp_path), serial="EGTRUST03")
    stranger = sticks.make_stick(tmp_path / "stranger.img", [sticks.Part("vfat", 40)])
    lab.plug_stick(stranger, serial="EGCOLD01")
    trust = disk_info(lab, "EGTRUST03", 2)
    other = disk_info(lab, "EGCOLD01", 1)
    assert_read_only(trust)
    assert_read_only(other)
    daemon = GuestDaemon(lab, trust_policy("EGTRUST03"))
    daemon.start()
    luks = trust["partitions"][0]["node"]
    record_for(daemon, "usb-write-allowed", luks)
    record_for(daemon, "usb-read-only", other["partitions"][0]["node"])
    assert disk_info(lab, "EGTRUST03", 2)["partitions"][0]["sysfs_ro"] == 0
    assert_read_only(disk_info(lab, "EGCOLD01", 1))
    assert_container_writable(lab, luks)
    daemon.stop()
