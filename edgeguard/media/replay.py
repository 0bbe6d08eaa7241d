"""Replay recorded uevents through the real engine, against a simulated block layer.

:class:`SimulatedKernel` stands in for the kernel and udev: when a USB block device
arrives it exists read-only (that is what the shipped udev rule does before any
listener sees the event); when it is removed, acting on it raises
:class:`~edgeguard.media.block.DeviceGone`, exactly as ``open("/dev/sdb")`` would. A
partition is read-only when its own flag or its disk's flag is set, as in the kernel.

Used by the unit tests (no root) and by ``edgeguard media replay``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgeguard.media.block import DeviceGone
from edgeguard.media.engine import MediaEngine
from edgeguard.media.uevent import MalformedUevent, parse_uevent

__all__ = ["SimulatedKernel", "replay"]


def _is_usb(props: Mapping[str, Any]) -> bool:
    """Whether the shipped udev rule makes this node read-only (every protected kind)."""
    devpath = props.get("DEVPATH")
    try:
        device = parse_uevent(props).device
        return device.protected and not device.exempt  # the one exemption needs ID_PATH
    except MalformedUevent:
        return props.get("ID_BUS") == "usb" or (isinstance(devpath, str) and "/usb" in devpath)


class SimulatedKernel:
    def __init__(self) -> None:
        self.flags: dict[str, bool] = {}  # node -> its own ro flag
        self.parents: dict[str, str] = {}
        self.deauthorized: set[str] = set()
        self.usb: set[str] = set()  # nodes the shipped rule made read-only at least once

    # The kernel + udev side: what happens before the daemon reads the event.
    def uevent(self, props: Mapping[str, Any]) -> None:
        devpath = props.get("DEVPATH")
        if (isinstance(devpath, str) and props.get("SUBSYSTEM") == "usb"
                and props.get("ACTION") == "add" and props.get("EDGEGUARD_MEDIA") == "blocked"):
            self.deauthorized.add(f"/sys{devpath}")  # rule 61's ATTR{authorized}="0"
            return
        if not isinstance(devpath, str) or props.get("SUBSYSTEM") != "block":
            return
        parts = devpath.rstrip("/").split("/")
        name = parts[-1]
        action = props.get("ACTION")
        if action == "remove":
            self.flags.pop(name, None)
            self.parents.pop(name, None)
            self.usb.discard(name)
            return
        if action in ("add", "change"):
            self.flags.setdefault(name, False)
            if props.get("DEVTYPE") == "partition" and len(parts) > 1:
                self.parents[name] = parts[-2]
            if _is_usb(props):  # the shipped udev rule
                self.flags[name] = True
                self.usb.add(name)

    # The BlockLayer protocol, used by the engine.
    def read_only(self, name: str) -> bool:
        if name not in self.flags:
            raise DeviceGone(2, f"/dev/{name}: No such file or directory")
        parent = self.parents.get(name)
        return self.flags[name] or (parent is not None and self.flags.get(parent, False))

    def set_read_only(self, name: str, read_only: bool) -> bool:
        before = self.read_only(name)
        self.flags[name] = read_only
        return before != self.read_only(name)

    def deauthorize(self, usb_syspath: str) -> bool:
        if usb_syspath in self.deauthorized:
            return False
        self.deauthorized.add(usb_syspath)
        return True

    def authorized(self, usb_syspath: str) -> bool:
        return usb_syspath not in self.deauthorized


def replay(engine: MediaEngine, kernel: SimulatedKernel,
           bursts: Iterable[Iterable[Mapping[str, Any]]]) -> None:
    """Feed each burst to the kernel first, then to the engine, event by event."""
    for burst in bursts:
        events = list(burst)
        for props in events:
            if isinstance(props, Mapping):
                kernel.uevent(props)
        for props in events:
            engine.handle_properties(props)
