"""The kiosk component: udev (subsystem ``usb``) -> :class:`UsbGuard`; ``/dev/rfkill`` ->
:class:`RadioGuard`; both on the daemon's event loop.

The udev monitor and the rfkill device are sources with injectable stand-ins: the unit
tests drive the same guards over a fake sysfs tree and a socketpair; the lab drives them
with QEMU hot-plug and mac80211_hwsim.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyudev

from edgeguard.daemon.component import Command, Component, Context, Peer, read_only
from edgeguard.decision import effective_mode
from edgeguard.events import ActionKind, Mode
from edgeguard.findings import Area
from edgeguard.kiosk.bootset import read_boot_id
from edgeguard.kiosk.guard import DeauthorizeAction, UsbGuard
from edgeguard.kiosk.radio import RadioGuard
from edgeguard.kiosk.rfkill import RfkillDevice
from edgeguard.kiosk.sysfs import UsbSysfs
from edgeguard.policy.model import Policy

__all__ = ["KioskComponent", "UdevSource", "UsbSource", "components"]


class UsbSource(Protocol):
    def fileno(self) -> int | None: ...

    def read(self) -> Iterator[tuple[str, str, str | None]]:
        """Pending ``(action, sys_name, devtype)`` events."""

    def close(self) -> None: ...


class UdevSource:
    """pyudev's monitor on the udev netlink group, filtered to subsystem ``usb``."""

    def __init__(self) -> None:
        self._monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        self._monitor.filter_by("usb")
        self._monitor.start()

    def fileno(self) -> int | None:
        fd: int = self._monitor.fileno()
        return fd

    def read(self) -> Iterator[tuple[str, str, str | None]]:
        for _ in range(1024):  # bounded per wake-up; the loop calls us again
            device = self._monitor.poll(timeout=0)
            if device is None:
                return
            yield device.action or "", device.sys_name, device.device_type

    def close(self) -> None:
        self._monitor.stop()


class NoSource:
    """For a fake sysfs root: events come from the test."""

    def fileno(self) -> int | None:
        return None

    def read(self) -> Iterator[tuple[str, str, str | None]]:
        return iter(())

    def close(self) -> None:
        return None


def _mode(policy: Policy) -> Mode:
    return effective_mode(policy, Area.KIOSK)


class KioskComponent:
    name = "kiosk"
    area = Area.KIOSK

    def __init__(self, source_factory: Callable[[], UsbSource] | None = None,
                 rfkill: RfkillDevice | None = None, boot_id: str | None = None) -> None:
        self._source_factory = source_factory
        self._rfkill = rfkill
        self._boot_id = boot_id
        self._ctx: Context | None = None
        self._source: UsbSource | None = None
        self.usb: UsbGuard | None = None
        self.radio: RadioGuard | None = None
        self.radio_error: str | None = None

    def start(self, ctx: Context) -> None:
        self._ctx = ctx
        config = ctx.policy.kiosk
        sysfs = UsbSysfs(Path(config.sysfs_root))
        self.usb = UsbGuard(config=config, mode=_mode(ctx.policy), sysfs=sysfs,
                            audit=ctx.audit, clock=ctx.clock, submit=ctx.submit,
                            state_dir=ctx.state_dir,
                            boot_id=self._boot_id or read_boot_id())
        factory = self._source_factory or (
            UdevSource if config.sysfs_root == "/sys" else NoSource)
        self._source = factory()  # before coldplug: no device slips between the two
        fd = self._source.fileno()
        if fd is not None:
            ctx.loop.add_reader(fd, self.poll)
        self.usb.start()
        # Judge present devices once the daemon has registered our pipeline actions.
        ctx.loop.call_soon(self.usb.coldplug)
        self.radio = RadioGuard(config=config, mode=_mode(ctx.policy),
                                device=self._rfkill or RfkillDevice(config.rfkill_device),
                                audit=ctx.audit, clock=ctx.clock, submit=ctx.submit)
        try:
            rfd = self.radio.start()
        except OSError as exc:
            # No rfkill (no radios, or a container): nothing to keep off, but say so.
            self.radio_error = f"{config.rfkill_device}: {exc.strerror}"
            if exc.errno not in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
                raise
            self.radio = None
            return
        ctx.loop.add_reader(rfd, self.radio.on_readable)

    def poll(self) -> None:
        if self._source is None or self.usb is None:
            return
        for action, name, devtype in self._source.read():
            self.usb.on_uevent(action, name, devtype)

    def reload(self, policy: Policy) -> None:
        if self.usb is not None:
            self.usb.reconfigure(policy.kiosk, _mode(policy))
        if self.radio is not None:
            self.radio.reconfigure(policy.kiosk, _mode(policy))

    def stop(self) -> None:
        loop = self._ctx.loop if self._ctx is not None else None
        if self._source is not None:
            fd = self._source.fileno()
            if fd is not None and loop is not None:
                loop.remove_reader(fd)
            self._source.close()
            self._source = None
        if self.radio is not None:
            if self.radio.device.fd is not None and loop is not None:
                loop.remove_reader(self.radio.device.fd)
            self.radio.device.close()

    def counters(self) -> Mapping[str, int]:
        out: dict[str, int] = {}
        if self.usb is not None:
            out.update(self.usb.counter_map())
        if self.radio is not None:
            out.update(self.radio.counter_map())
        return out

    def commands(self) -> Mapping[str, Command]:
        return {"kiosk.devices": read_only(self.cmd_devices)}

    def actions(self) -> Mapping[ActionKind, DeauthorizeAction]:
        """Offered to the pipeline: ``deauthorize`` for kiosk findings."""
        if self.usb is None:
            return {}
        return {ActionKind.DEAUTHORIZE: DeauthorizeAction(self.usb.sysfs)}

    async def cmd_devices(self, peer: Peer, args: Mapping[str, Any]) -> Any:
        del peer, args
        return self.usb.rows() if self.usb is not None else []


def components(policy: Policy) -> list[Component]:
    return [KioskComponent()] if policy.kiosk.enabled else []
