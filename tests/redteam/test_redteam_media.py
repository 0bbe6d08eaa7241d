"""An unprivileged user against a protected stick while the real daemon runs.

The stick is a loop device given a USB identity by the test udev rule; the *shipped*
rule sets BLKROSET on it and its partition, the daemon judges it (not a trust device:
read-only) and mounts it ``ro,nosuid,nodev,noexec``. The user is then given raw access
to the device nodes on purpose (group ``disk``, as a misconfigured seat might): only
the kernel read-only flag and the mount stand in the way. A loop device without a USB
identity, written the same way by the same user, is the positive control.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeguard.daemon.control import request
from tests.linux.media.media_sticks import (
    Stick,
    StickSpec,
    attach,
    blkroget,
    build_image,
    detach,
    make_fs,
)
from tests.redteam.conftest import HostDaemon
from tests.redteam.redteam_support import User, as_user, send_uevent, udev_message

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

DD, MKFS, BLKDISCARD = "/usr/bin/dd", "/usr/sbin/mkfs.vfat", "/usr/sbin/blkdiscard"
BLOCKDEV, MOUNT, UNSHARE = "/usr/sbin/blockdev", "/usr/bin/mount", "/usr/bin/unshare"


def _records(daemon: HostDaemon) -> list[dict[str, Any]]:
    out = []
    for path in sorted(daemon.audit.glob("*.jsonl")):
        out.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return out


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30,
          detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what} {detail()}"
        time.sleep(0.1)


def _media_counters(daemon: HostDaemon) -> dict[str, Any]:
    counters: dict[str, Any] = request(daemon.socket, "status")["sources"]["media"]["counters"]
    return counters


class RawAccess:
    """Give group ``disk`` rw on device nodes for a test; put the old owner/mode back."""

    def __init__(self) -> None:
        self.disk = grp.getgrnam("disk").gr_gid
        self.saved: list[tuple[str, int, int, int]] = []

    def grant(self, *names: str) -> None:
        for name in names:
            path = f"/dev/{name}"
            st = os.stat(path)
            self.saved.append((path, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
            os.chown(path, 0, self.disk)
            os.chmod(path, 0o660)

    def restore(self) -> None:
        for path, uid, gid, mode in reversed(self.saved):
            if os.path.exists(path):
                os.chown(path, uid, gid)
                os.chmod(path, mode)


@pytest.fixture(scope="module")
def raw_access() -> Iterator[RawAccess]:
    access = RawAccess()
    yield access
    access.restore()


@pytest.fixture(scope="module")
def stick(host_daemon: HostDaemon, raw_access: RawAccess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stick]:
    """A visitor's ext4 stick (this kernel has no vfat): judged read-only by the daemon
    and mounted read-only."""
    image = build_image(tmp_path_factory.mktemp("stick"),
                        StickSpec(name="redteam", partitions=("ext4",), serial="VISITOR-RT"))
    made = attach(image, 1)
    try:
        part = made.partitions[0]
        _wait(lambda: any(r["event"]["action"] == "usb-read-only"
                          and r.get("volume", {}).get("device_name") == f"/dev/{part}"
                          for r in _records(host_daemon)), "the daemon's read-only verdict")
        _wait(lambda: _mount_of(host_daemon.mounts / part) is not None,
              "the read-only mount", detail=lambda: str(_media_counters(host_daemon)))
        raw_access.grant(*made.nodes)
        yield made
    finally:
        target = host_daemon.mounts / made.partitions[0]
        if _mount_of(target) is not None:
            subprocess.run(["/usr/bin/umount", "--lazy", str(target)], check=False,
                           capture_output=True, timeout=30)
        detach(made)


def _mount_of(target: Path) -> set[str] | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(target):
            return set(fields[5].split(","))
    return None


def _disk_user(user: User, raw: RawAccess, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return as_user(user, argv, groups=(raw.disk,))


def test_positive_control_raw_access_writes_an_unprotected_device(
        intruder: User, raw_access: RawAccess, tmp_path: Path) -> None:
    """Without the USB identity the same user with the same access writes the device:
    the refusals below are the read-only flag, not missing permissions."""
    image = tmp_path / "plain-disk.img"  # not egm-stick-*: no USB identity, no rule
    make_fs(image, "raw", 4 * 2**20)
    plain = attach(image, 0)
    try:
        assert not blkroget(plain.loop)
        raw_access.grant(plain.loop)
        wrote = _disk_user(intruder, raw_access, [DD, "if=/dev/urandom", f"of=/dev/{plain.loop}",
                                                  "bs=4096", "count=4", "oflag=direct",
                                                  "conv=notrunc"])
        assert wrote.returncode == 0, wrote.stderr
        assert image.read_bytes()[:16384] != bytes(16384)
    finally:
        detach(plain)


def test_stick_is_protected_in_the_kernel(stick: Stick) -> None:
    assert all(blkroget(node) for node in stick.nodes)


@pytest.mark.parametrize("node", ["disk", "partition"])
def test_intruder_cannot_write_through_the_device_node(
        stick: Stick, intruder: User, raw_access: RawAccess, node: str) -> None:
    name = stick.loop if node == "disk" else stick.partitions[0]
    before = stick.sha256()
    result = _disk_user(intruder, raw_access, [DD, "if=/dev/zero", f"of=/dev/{name}",
                                               "bs=4096", "count=16", "conv=notrunc"])
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr or "Read-only" in result.stderr \
        or "Permission denied" in result.stderr, result.stderr
    assert stick.sha256() == before


def test_intruder_cannot_format_discard_or_unprotect_the_stick(
        stick: Stick, intruder: User, raw_access: RawAccess) -> None:
    before = stick.sha256()
    part = f"/dev/{stick.partitions[0]}"
    for argv in ([MKFS, "-I", part], [BLKDISCARD, "-f", f"/dev/{stick.loop}"],
                 [BLKDISCARD, "-f", part], [BLOCKDEV, "--setrw", f"/dev/{stick.loop}"],
                 [BLOCKDEV, "--setrw", part]):
        result = _disk_user(intruder, raw_access, argv)
        assert result.returncode != 0, (argv, result.stdout, result.stderr)
    assert all(blkroget(node) for node in stick.nodes)
    assert stick.sha256() == before


def test_intruder_cannot_remount_the_stick_read_write(
        host_daemon: HostDaemon, stick: Stick, intruder: User, raw_access: RawAccess) -> None:
    target = host_daemon.mounts / stick.partitions[0]
    options = _mount_of(target)
    assert options is not None
    assert {"ro", "nosuid", "nodev", "noexec"} <= options
    before = stick.sha256()
    attempts = [
        [MOUNT, "-o", "remount,rw", str(target)],
        # a user namespace makes the intruder "root" of a new mount namespace, but the
        # read-only flag of a mount inherited from outside is locked (MNT_LOCK_READONLY)
        [UNSHARE, "--user", "--map-root-user", "--mount", MOUNT, "-o", "remount,rw",
         str(target)],
        [UNSHARE, "--user", "--map-root-user", "--mount", MOUNT, "-o", "rw",
         f"/dev/{stick.partitions[0]}", "/mnt"],
    ]
    for argv in attempts:
        result = _disk_user(intruder, raw_access, argv)
        assert result.returncode != 0, (argv, result.stderr)
    assert "ro" in (_mount_of(target) or set())
    write = _disk_user(intruder, raw_access, ["/usr/bin/touch", str(target / "planted")])
    assert write.returncode != 0
    assert stick.sha256() == before


# -- forged uevents ----------------------------------------------------------------------
SEND_UEVENT = """
import socket
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15)
s.bind((0, 0))
try:
    s.sendto(b"libudev\\0" + bytes(32), (0, 2))
    print("sent")
except PermissionError:
    print("EPERM")
"""


def test_intruder_cannot_forge_uevents(intruder: User) -> None:
    result = as_user(intruder, [sys.executable, "-c", SEND_UEVENT])
    assert result.stdout.strip() == "EPERM", result.stdout + result.stderr


def _malformed_uevents(count: int) -> list[bytes]:
    """Block-subsystem messages the parser must refuse; none names a real device."""
    good = {"ACTION": "add", "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_BUS": "usb",
            "ID_VENDOR_ID": "0951", "ID_MODEL_ID": "1666", "ID_SERIAL_SHORT": "RT-FUZZ",
            "MAJOR": "7", "MINOR": "250"}
    out = []
    for i in range(count):
        name = f"egrtz{i}"
        props = {**good, "SEQNUM": str(900000 + i), "DEVPATH": f"/devices/virtual/block/{name}",
                 "DEVNAME": f"/dev/{name}"}
        match i % 8:
            case 0:
                props["DEVPATH"] = f"/devices/../../etc/{name}"  # path traversal
            case 1:
                props["DEVNAME"] = "/dev/sda"  # does not match DEVPATH
            case 2:
                props["ACTION"] = "online"  # valid for udev, never for a block device here
            case 3:
                props["ID_VENDOR_ID"] = "zz9\x1b[2J"  # not a USB id, escape codes
            case 4:
                props["DEVTYPE"] = "partition"  # its own parent
                props["DEVPATH"] = f"/devices/virtual/block/{name}/{name}"
            case 5:
                props["ID_MODEL"] = "A" * 4000  # far too long (udev messages stay < 8 KiB)
            case 6:  # a kernel name no kernel gives, shell metacharacters
                props["DEVPATH"] = f"/devices/virtual/block/{name};reboot"
                props["DEVNAME"] = f"/dev/{name};reboot"
            case _:
                props["EDGEGUARD_SIZE"] = "9" * 25  # not a sane number
        out.append(udev_message(props))
    return out


def test_forged_malformed_uevents_do_not_crash_the_daemon(
        host_daemon: HostDaemon, tmp_path: Path) -> None:
    """Replayed through the live netlink path (what udevd broadcasts), not only the
    parser: the daemon counts them, stays up, and still protects the next stick."""
    def malformed() -> int:
        counters = request(host_daemon.socket, "status")["sources"]["media"]["counters"]
        return int(counters["malformed"])

    before = malformed()
    sent = send_uevent(_malformed_uevents(400))
    # each one reaches the parser and is refused (the 4 MiB receive buffer holds them all)
    _wait(lambda: malformed() - before >= sent, f"{sent} malformed uevents counted")
    assert host_daemon.alive()
    status = request(host_daemon.socket, "status")
    assert status["sources"]["media"]["running"] is True
    # a forged device is listed as what it is (issue 16 §4: a device the daemon refused
    # to parse was still plugged in), never as one the daemon judged or made writable
    listed = request(host_daemon.socket, "media.list")
    forged = [row for row in listed if "egrtz" in json.dumps(row)]
    assert all(row["edgeguard.media.verdict"] == "malformed" for row in forged), forged
    assert not any(row["volume.writable"] for row in forged)
    assert not any("\x1b" in str(v) for row in forged for v in row.values())  # escaped
    assert not any(Path(f"/dev/egrtz{i}").exists() for i in range(3))
    # still detecting: a stick plugged after the garbage is judged and recorded
    image = build_image(tmp_path, StickSpec(name="after-fuzz", partitions=("ext4",),
                                            serial="VISITOR-AF"))
    late = attach(image, 1)
    try:
        part = late.partitions[0]
        _wait(lambda: any(r["event"]["action"] == "usb-read-only"
                          and r.get("volume", {}).get("device_name") == f"/dev/{part}"
                          for r in _records(host_daemon)), "a verdict for the late stick")
        assert all(blkroget(node) for node in late.nodes)
        target = host_daemon.mounts / part
        _wait(lambda: _mount_of(target) is not None, "the late stick's read-only mount")
        assert "ro" in (_mount_of(target) or set())
    finally:
        target = host_daemon.mounts / late.partitions[0]
        subprocess.run(["/usr/bin/umount", "--lazy", str(target)], check=False,
                       capture_output=True, timeout=30)
        detach(late)
