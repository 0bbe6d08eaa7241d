"""Where uevents come from: the live udev monitor (pyudev) or a recorded sequence.

Both sources hand the engine plain property mappings, so the live daemon and replay
share one code path. The live monitor listens on the *udev* netlink group: events
arrive after udev ran its rules, i.e. after the shipped rule already set the
read-only flag. Coldplug enumerates the block devices already present at start.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["MediaSource", "UdevSource", "disk_properties", "load_recording",
           "present_disks"]

SECTOR = 512


class MediaSource(Protocol):
    def fileno(self) -> int | None:
        """A descriptor to watch for readability, or None for a source that is pushed."""

    def coldplug(self) -> Iterator[Mapping[str, str]]:
        """Properties of devices present now, with ACTION=coldplug."""

    def read(self) -> Iterator[Mapping[str, str]]:
        """Drain the events that are ready, without blocking."""

    def close(self) -> None: ...


def _properties(device: Any, action: str | None) -> dict[str, str]:
    props = {str(k): str(v) for k, v in device.properties.items()}
    if action is not None:
        props["ACTION"] = action
    try:
        size = device.attributes.asint("size")
    except (KeyError, ValueError, OSError):
        size = None
    if size is not None:
        props["EDGEGUARD_SIZE"] = str(size * SECTOR)
    props.update(_removability(device))
    return props


def _usb_properties(device: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in device.properties.items()}


def _attribute(device: Any, name: str) -> str | None:
    try:
        value = device.attributes.get(name)
    except (KeyError, ValueError, OSError):
        return None
    return value.decode("ascii", "replace").strip() if isinstance(value, bytes) else None


def _removability(device: Any) -> dict[str, str]:
    """The sysfs facts edgeguard.media.kind needs and udev does not export: the disk's
    removable-media flag, an external-facing ancestor (firmware's ``removable``) and an
    MMC card's type."""
    out: dict[str, str] = {}
    for node in (device, *device.ancestors):
        removable = _attribute(node, "removable")
        if node.subsystem == "block" and removable == "1":
            out["EDGEGUARD_REMOVABLE"] = "1"
        if removable == "removable":
            out["EDGEGUARD_EXTERNAL"] = "1"
        if node.subsystem == "mmc":
            mmc_type = _attribute(node, "type")
            if mmc_type is not None and mmc_type.isalnum():
                out["EDGEGUARD_MMC_TYPE"] = mmc_type
    return out


class UdevSource:
    """pyudev monitor on the block subsystem, non-blocking, for ``loop.add_reader``."""

    def __init__(self) -> None:
        import pyudev  # noqa: PLC0415 - replay and unit tests need no libudev

        self._context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(self._context, source="udev")
        self._monitor.filter_by(subsystem="block")
        self._monitor.filter_by(subsystem="usb", device_type="usb_interface")  # MTP/PTP
        # Bursts of partitions at plug-in. SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it
        # the default buffer still works (a very large burst may then be lost: ENOBUFS).
        with contextlib.suppress(OSError):
            self._monitor.set_receive_buffer_size(4 * 2**20)
        self._monitor.start()

    def fileno(self) -> int | None:
        fd: int = self._monitor.fileno()
        return fd

    def coldplug(self) -> Iterator[Mapping[str, str]]:
        for device in self._context.list_devices(subsystem="block"):
            yield _properties(device, "coldplug")
        # phones/cameras the rule blocked before we started: audited as if just added
        for device in self._context.list_devices(subsystem="usb", DEVTYPE="usb_interface"):
            if device.properties.get("EDGEGUARD_MEDIA_KIND") == "mtp":
                yield {**_usb_properties(device), "ACTION": "add"}

    def read(self) -> Iterator[Mapping[str, str]]:
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return
            if device.subsystem == "usb":
                yield _usb_properties(device)
            else:
                yield _properties(device, None)

    def close(self) -> None:
        sock = getattr(self._monitor, "_socket", None)
        if sock is not None:
            sock.close()


def disk_properties(devnode: str) -> dict[str, str]:
    """udev's properties of the whole disk behind ``devnode`` (a disk or a partition),
    as the daemon would see them: for ``media register``/``exempt`` with no daemon."""
    import pyudev  # noqa: PLC0415 - only the commands that read a live device need it

    context = pyudev.Context()
    try:
        device = pyudev.Devices.from_device_file(context, devnode)
    except (pyudev.DeviceNotFoundError, OSError, ValueError) as exc:
        raise ValueError(f"{devnode}: not a block device udev knows ({exc})") from None
    if device.subsystem != "block":
        raise ValueError(f"{devnode}: not a block device")
    if device.device_type == "partition":
        device = device.find_parent("block", "disk")
    return _properties(device, "coldplug")


def present_disks() -> list[dict[str, str]]:
    """udev's properties of every whole disk present now (``media generate``)."""
    import pyudev  # noqa: PLC0415 - only the commands that read live devices need it

    context = pyudev.Context()
    return [_properties(d, "coldplug")
            for d in context.list_devices(subsystem="block", DEVTYPE="disk")]


def load_recording(path: Path) -> list[list[dict[str, str]]]:
    """A recorded uevent sequence: ``{"bursts": [[{uevent}, ...], ...]}``.

    A *burst* is what the kernel did before the daemon got to read: e.g. ``add`` then
    ``remove`` of the same stick in one burst means it was pulled while we evaluated.
    Values are kept as the JSON gave them; the engine validates (and counts) them.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    bursts = data.get("bursts") if isinstance(data, dict) else None
    if not isinstance(bursts, list) or not all(isinstance(b, list) for b in bursts):
        raise ValueError(f"{path}: expected {{'bursts': [[uevent, ...], ...]}}")
    return bursts
