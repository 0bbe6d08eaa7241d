"""Kiosk (non_trust: blocked) de-authorises the USB interface; optional mounts are
read-only with nosuid/nodev/noexec (+noload for ext3/4); monitor mode changes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from media_harness import UEVENTS, harness, media_policy

from edgeguard.events import Mode
from edgeguard.media.config import NonTrustMode
from edgeguard.media.mount import Mounter, mount_argv, unmount_argv
from edgeguard.media.replay import replay
from edgeguard.media.source import load_recording
from edgeguard.media.uevent import BlockDevice

KIOSK = dataclasses.replace(media_policy().media, non_trust=NonTrustMode.BLOCKED)


def test_kiosk_deauthorizes_the_mass_storage_interface(tmp_path: Path) -> None:
    h = harness(tmp_path, config=KIOSK)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "11-usb-bus-stick.json")[:2])
    assert h.kernel.deauthorized == {
        "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0"}
    records = h.fields()
    assert {r["event.action"] for r in records} == {"usb-blocked"}
    assert all(r["event.outcome"] == "success" for r in records)
    assert all(r["volume.writable"] is False for r in records)


def test_kiosk_without_usb_interface_fails_closed_on_record(tmp_path: Path) -> None:
    """A loop stand-in has no USB interface: blocking fails (on record), stays read-only."""
    h = harness(tmp_path, config=KIOSK)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "01-non-trust-add-remove.json")[:2])
    records = h.fields()
    assert {r["event.action"] for r in records} == {"usb-blocked"}
    assert all(r["event.outcome"] == "failure" for r in records)
    assert all("de-authorise" in str(r["error.message"]) for r in records)
    assert all(h.kernel.read_only(n) for n in ("loop0", "loop0p1", "loop0p2"))


def test_monitor_mode_leaves_udev_flag_and_says_so(tmp_path: Path) -> None:
    h = harness(tmp_path, mode=Mode.MONITOR)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "02-trust-luks-partition.json"))
    assert all(h.kernel.read_only(n) for n in ("loop0", "loop0p1", "loop0p2"))
    luks = [r for r in h.fields() if r["volume.device_name"] == "/dev/loop0p2"]
    assert luks[-1]["event.action"] == "usb-write-allowed"
    assert luks[-1]["volume.writable"] is False
    assert luks[-1]["edgeguard.mode"] == "monitor"


def _dev(fs: str, usage: str = "filesystem") -> BlockDevice:
    return BlockDevice(name="sdb1", devtype="partition", parent="sdb", usb=True, fs_type=fs,
                       fs_usage=usage)


def test_mount_arguments() -> None:
    target = Path("/run/edgeguard/media/sdb1")
    assert mount_argv(_dev("ext4"), target) == [
        "/usr/bin/mount", "-t", "ext4", "-o", "ro,nosuid,nodev,noexec,noload", "/dev/sdb1",
        str(target)]
    assert mount_argv(_dev("vfat"), target) == [
        "/usr/bin/mount", "-t", "vfat", "-o", "ro,nosuid,nodev,noexec", "/dev/sdb1", str(target)]
    assert mount_argv(_dev("crypto_LUKS"), target) is None
    assert unmount_argv(target) == ["/usr/bin/umount", "--lazy", str(target)]


def test_mounter_only_mounts_filesystems(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def runner(argv: object) -> int:
        calls.append(list(argv))  # type: ignore[call-overload]
        return 0

    m = Mounter(tmp_path, runner)
    m.mount(_dev("crypto_LUKS", "crypto"))
    m.mount(_dev("ext4"))
    m.mount(_dev("ext4"))  # idempotent
    assert len(calls) == 1
    assert calls[0][4] == "ro,nosuid,nodev,noexec,noload"
    m.unmount(_dev("ext4"))
    assert calls[1][:2] == ["/usr/bin/umount", "--lazy"]
    assert not (tmp_path / "sdb1").exists()


MOUNTINFO = (
    "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    "40 30 8:17 / /media/usb\\040stick rw,nosuid,nodev - vfat /dev/sdb1 rw,fmask=0022\n"
    "41 30 8:17 / /run/edgeguard/media/sdb1 ro,nosuid - vfat /dev/sdb1 ro\n"
    "garbage line\n"
)


def test_revoke_remounts_writable_mounts_of_the_device(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    calls: list[list[str]] = []

    def runner(argv: object) -> int:
        calls.append(list(argv))  # type: ignore[call-overload]
        return 0

    Mounter(tmp_path, runner, mountinfo=info).revoke(_dev("vfat"))
    assert calls == [["/usr/bin/mount", "-o", "remount,ro", "/media/usb stick"]]


def test_expired_allow_revokes_rw_mounts(tmp_path: Path) -> None:
    revoked: list[str] = []
    h = harness(tmp_path)
    h.engine._revoke = lambda dev: revoked.append(dev.name)
    replay(h.engine, h.kernel, load_recording(UEVENTS / "01-non-trust-add-remove.json")[:2])
    dev = h.engine.find("loop0")
    assert dev is not None
    h.engine.allows.grant(dev.identity or ("", "", ""), dev.devnode, 60, "root", "test")
    h.engine.reevaluate_all()
    assert not h.kernel.read_only("loop0p1")
    assert revoked == []
    h.clock.advance(61)
    h.engine.expire_allows()
    assert h.kernel.read_only("loop0p1")
    assert sorted(revoked) == ["loop0", "loop0p1", "loop0p2"]


def test_exempt_system_disk_is_left_alone(tmp_path: Path) -> None:
    h = harness(tmp_path)
    bursts = load_recording(UEVENTS / "01-non-trust-add-remove.json")[:2]
    port = "platform-edgeguard-test-usb-0:1:1.0-scsi-0:0:0:0"
    exempt = [[{**e, "EDGEGUARD_MEDIA_EXEMPT_PORT": port, "ID_PATH": port} for e in b]
              for b in bursts]
    replay(h.engine, h.kernel, exempt)
    # not judged, but on record once (issue 18: every exempt device is audited)
    assert [r.action for r in h.sink.records] == ["usb-exempt"]
    assert h.engine.counters.exempt == 3
    assert not h.kernel.read_only("loop0p1")


def test_exemption_without_a_port_is_ignored(tmp_path: Path) -> None:
    """An exemption the rule cannot key on a port (no ID_PATH) is no exemption."""
    h = harness(tmp_path)
    bursts = load_recording(UEVENTS / "01-non-trust-add-remove.json")[:2]
    replay(h.engine, h.kernel, [[{**e, "EDGEGUARD_MEDIA_EXEMPT_PORT": "pci-0-usb-0:1"}
                                 for e in b]
                                for b in bursts])
    assert h.engine.counters.exempt == 0
    assert h.kernel.read_only("loop0p1")
