"""Writing the kernel's USB authorisation attributes (``Documentation/usb/authorization``).

* ``/sys/bus/usb/devices/usbN/authorized_default`` on each root hub: what new devices
  get before anyone decides (0 none, 1 all, 2 internal/hard-wired ports only).
* ``/sys/bus/usb/devices/usbN/interface_authorized_default``: the same for interfaces.
* ``.../<bus_path>/authorized``: 0 unbinds every driver and unconfigures the device (no
  network interface, no input device); 1 configures it and lets drivers bind.
* ``.../<bus_path>:<cfg>.<n>/authorized`` (Linux >= 4.4): one interface.

The root is a parameter so the unit tests run this very code over a fake sysfs tree;
the lab proves it on a real kernel. Names are checked before they become paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeguard.kiosk.config import UsbClass
from edgeguard.kiosk.usb import UsbDevice, classify, read_device, valid_sysname

__all__ = ["DeviceGone", "InterfaceState", "UsbSysfs"]


class DeviceGone(OSError):
    """The device left between its uevent and our write."""


@dataclass(frozen=True, slots=True)
class InterfaceState:
    name: str  # 1-1.4:1.0
    usb_class: UsbClass
    authorized: bool | None  # None: the kernel offers no per-interface authorisation


class UsbSysfs:
    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root
        self.devices = root / "bus" / "usb" / "devices"

    def _path(self, name: str) -> Path:
        if not valid_sysname(name):
            raise ValueError(f"not a USB sysfs name: {name!r}")
        return self.devices / name

    def root_hubs(self) -> list[str]:
        try:
            names = os.listdir(self.devices)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if n.startswith("usb") and valid_sysname(n)),
                      key=lambda n: int(n[3:]))

    def device_names(self) -> list[str]:
        """Every non-root-hub device, parents before children (hubs first)."""
        try:
            names = os.listdir(self.devices)
        except FileNotFoundError:
            return []
        devs = [n for n in names if ":" not in n and not n.startswith("usb")
                and valid_sysname(n)]
        return sorted(devs, key=lambda n: (n.count("."), n))

    def read(self, bus_path: str) -> UsbDevice:
        try:
            return read_device(self.root, bus_path)
        except FileNotFoundError as exc:
            raise DeviceGone(2, f"{bus_path}: gone") from exc

    def _write(self, path: Path, value: str) -> bool:
        """Write ``value`` unless it is already there; True if it changed."""
        try:
            if path.read_text().strip() == value:
                return False
            with path.open("w") as fh:
                fh.write(value)
        except FileNotFoundError as exc:
            raise DeviceGone(2, f"{path}: gone") from exc
        return True

    def set_authorized_default(self, value: str) -> dict[str, bool]:
        """Write every root hub's ``authorized_default``; returns hub -> changed."""
        return {hub: self._write(self._path(hub) / "authorized_default", value)
                for hub in self.root_hubs()}

    def set_interface_authorized_default(self, value: str) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for hub in self.root_hubs():
            attr = self._path(hub) / "interface_authorized_default"
            if attr.exists():
                out[hub] = self._write(attr, value)
        return out

    def set_authorized(self, bus_path: str, authorized: bool) -> bool:
        return self._write(self._path(bus_path) / "authorized", "1" if authorized else "0")

    def interfaces(self, bus_path: str) -> list[InterfaceState]:
        """The active configuration's interfaces (only exist while authorised)."""
        base = self._path(bus_path)
        out = []
        try:
            names = sorted(n for n in os.listdir(base) if n.startswith(bus_path + ":"))
        except FileNotFoundError as exc:
            raise DeviceGone(2, f"{bus_path}: gone") from exc
        for name in names:
            if not valid_sysname(name):
                continue
            path = base / name
            try:
                triple = [int((path / f"bInterface{k}").read_text().strip(), 16)
                          for k in ("Class", "SubClass", "Protocol")]
            except (OSError, ValueError):
                triple = [0xFF, 0xFF, 0xFF]  # unreadable: treat as vendor (refused)
            auth_path = path / "authorized"
            authorized = auth_path.read_text().strip() != "0" if auth_path.exists() else None
            out.append(InterfaceState(name, classify(*triple), authorized))
        return out

    def set_interface_authorized(self, name: str, authorized: bool) -> bool:
        bus_path = name.split(":", 1)[0]
        return self._write(self._path(bus_path) / name / "authorized",
                           "1" if authorized else "0")
