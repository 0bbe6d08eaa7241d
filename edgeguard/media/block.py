"""The kernel side of media enforcement: the block-device read-only flag and USB
de-authorisation.

``BLKROSET``/``BLKROGET`` (``<linux/fs.h>``: ``_IO(0x12, 93)`` / ``_IO(0x12, 94)``) set
and read the per-block-device read-only flag. It is enforced in the block layer for every
writer, including file descriptors opened before it was set (``blkdev_write_iter``
checks ``bdev_read_only`` on each write), and a partition is read-only when either its
own flag or its disk's flag is set. The flag is read back through both the ioctl and
``/sys/class/block/<name>/ro`` so a record never claims a state the kernel does not show.

De-authorising writes ``0`` to the ``authorized`` attribute of the USB *interface*
(Linux >= 4.4) the disk hangs off: the storage driver unbinds and the disk disappears,
which is what "blocked: not mounted, not readable" means for a kiosk.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
from pathlib import Path
from typing import Protocol

__all__ = ["BLKROGET", "BLKROSET", "BlockLayer", "DeviceGone", "KernelBlockLayer"]

BLKROSET = 0x125D
BLKROGET = 0x125E
_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,30}")


class DeviceGone(OSError):
    """The device vanished between its uevent and our action (unplugged meanwhile)."""


class BlockLayer(Protocol):
    def read_only(self, name: str) -> bool:
        """The kernel's read-only state of ``/dev/<name>`` (its own flag or its disk's)."""

    def set_read_only(self, name: str, read_only: bool) -> bool:
        """Set the node's own flag; return True if it changed. Raises DeviceGone."""

    def deauthorize(self, usb_syspath: str) -> bool:
        """De-authorise a USB interface/device; return True if it changed."""

    def authorized(self, usb_syspath: str) -> bool:
        """A USB interface/device's ``authorized`` read back. Raises DeviceGone."""


class KernelBlockLayer:
    """The real thing: ioctls on ``/dev``, attributes in ``/sys``."""

    def __init__(self, dev: Path = Path("/dev"), sys: Path = Path("/sys")) -> None:
        self.dev = dev
        self.sys = sys

    def _open(self, name: str) -> int:
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad block device name {name!r}")
        try:
            return os.open(self.dev / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, OSError) as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno in (6, 19):  # ENXIO, ENODEV
                raise DeviceGone(exc.errno, f"{self.dev / name}: {exc.strerror}") from exc
            raise

    def _ioctl_get(self, fd: int) -> bool:
        out = fcntl.ioctl(fd, BLKROGET, struct.pack("i", 0))
        return bool(struct.unpack("i", out)[0])

    def read_only(self, name: str) -> bool:
        fd = self._open(name)
        try:
            flag = self._ioctl_get(fd)
        finally:
            os.close(fd)
        sysfs = self.sys / "class" / "block" / name / "ro"
        try:
            sys_flag = sysfs.read_text().strip() == "1"
        except OSError:
            sys_flag = flag
        return flag or sys_flag

    def set_read_only(self, name: str, read_only: bool) -> bool:
        fd = self._open(name)
        try:
            before = self._ioctl_get(fd)
            fcntl.ioctl(fd, BLKROSET, struct.pack("i", int(read_only)))
            after = self._ioctl_get(fd)
        finally:
            os.close(fd)
        if read_only and not after:
            raise OSError(f"/dev/{name}: BLKROSET did not stick")
        return before != after

    def _authorized_attr(self, usb_syspath: str) -> Path:
        path = Path(usb_syspath)
        if path.parts[:2] != ("/", "sys") or ".." in path.parts:
            raise ValueError(f"bad USB sysfs path {usb_syspath!r}")
        # Through /sys/bus/usb/devices/<interface>: the path the hardened unit opens up.
        attr = self.sys / "bus" / "usb" / "devices" / path.name / "authorized"
        if not attr.exists():
            attr = self.sys.joinpath(*path.parts[2:], "authorized")
        return attr

    def deauthorize(self, usb_syspath: str) -> bool:
        attr = self._authorized_attr(usb_syspath)
        try:
            if attr.read_text().strip() == "0":
                return False
            attr.write_text("0")
        except FileNotFoundError as exc:
            raise DeviceGone(2, f"{attr}: gone") from exc
        return True

    def authorized(self, usb_syspath: str) -> bool:
        attr = self._authorized_attr(usb_syspath)
        try:
            return attr.read_text().strip() != "0"
        except FileNotFoundError as exc:
            raise DeviceGone(2, f"{attr}: gone") from exc
