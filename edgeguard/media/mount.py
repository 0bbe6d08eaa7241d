"""Optional read-only mounting of non-trust media (policy ``media.mount``).

Options are always ``ro,nosuid,nodev,noexec``; ext3/ext4 add ``noload`` so journal
replay cannot write even to a read-only device's page cache. Only filesystem types in
:data:`MOUNTABLE` are mounted; anything else is left unmounted (and still read-only).
External tools are called with argument lists and absolute paths.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from edgeguard.media.uevent import BlockDevice

__all__ = ["MOUNTABLE", "Mounter", "mount_argv", "mounts_of", "remount_ro_argv", "unmount_argv"]

MOUNT = "/usr/bin/mount"
UMOUNT = "/usr/bin/umount"
BASE_OPTIONS = "ro,nosuid,nodev,noexec"
#: blkid type -> mount type. ntfs goes through ntfs-3g (FUSE) on kernels without ntfs3.
MOUNTABLE = {"vfat": "vfat", "exfat": "exfat", "ext2": "ext2", "ext3": "ext3", "ext4": "ext4",
             "ntfs": "ntfs-3g", "iso9660": "iso9660", "udf": "udf"}

Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), capture_output=True, check=False,  # noqa: S603 - fixed argv
                          timeout=30).returncode


def mount_argv(device: BlockDevice, target: Path) -> list[str] | None:
    fstype = MOUNTABLE.get(device.fs_type or "")
    if fstype is None:
        return None
    options = BASE_OPTIONS + (",noload" if fstype in ("ext3", "ext4") else "")
    return [MOUNT, "-t", fstype, "-o", options, device.devnode, str(target)]


def unmount_argv(target: Path) -> list[str]:
    return [UMOUNT, "--lazy", str(target)]


def remount_ro_argv(target: str) -> list[str]:
    return [MOUNT, "-o", "remount,ro", target]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal ``\\040``."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_of(device: BlockDevice, mountinfo: str) -> list[str]:
    """Writable mount points whose source is ``device`` (from /proc/self/mountinfo text)."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if not sep or len(fields) < 6 or len(extra) < 2:
            continue
        if _unescape(extra[1]) == device.devnode and "rw" in fields[5].split(","):
            out.append(_unescape(fields[4]))
    return out


class Mounter:
    def __init__(self, root: Path, runner: Runner = _run,
                 mountinfo: Path = Path("/proc/self/mountinfo"), enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled  # policy media.mount; unmount/revoke work regardless
        self.runner = runner
        self.mountinfo = mountinfo
        self.mounted: dict[str, Path] = {}
        self.failures = 0

    def target(self, device: BlockDevice) -> Path:
        return self.root / device.name  # kernel names are validated by the parser

    def mount(self, device: BlockDevice) -> None:
        if not self.enabled or device.name in self.mounted or device.fs_usage != "filesystem":
            return
        target = self.target(device)
        argv = mount_argv(device, target)
        if argv is None:
            return
        target.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.runner(argv) == 0:
            self.mounted[device.name] = target
        else:
            self.failures += 1
            target.rmdir()

    def unmount(self, device: BlockDevice) -> None:
        target = self.mounted.pop(device.name, None)
        if target is None:
            return
        if self.runner(unmount_argv(target)) != 0:
            self.failures += 1
            return
        try:
            target.rmdir()
        except OSError:
            self.failures += 1

    def revoke(self, device: BlockDevice) -> None:
        """A device lost write access: remount its writable mounts read-only.

        Needed because the block-device flag alone does not stop a filesystem that is
        already mounted read-write (the block layer only warns about such writes).
        """
        try:
            text = self.mountinfo.read_text()
        except OSError:
            self.failures += 1
            return
        for target in mounts_of(device, text):
            if self.runner(remount_ro_argv(target)) != 0:
                self.failures += 1
