"""The devices the kiosk booted with (its own keyboard and mouse), kept across restarts.

When edgeguard first starts in a boot (``/proc/sys/kernel/random/boot_id`` differs from
the recorded one), every device the kernel has already authorised is taken as the boot
set: with the shipped udev rule, root hubs refuse new devices from udev's coldplug on,
so those are the devices enumerated before userspace started. A restart within the same
boot reloads the recorded set instead, so a device plugged since is *not* promoted.
The file is replaced atomically (:func:`edgeguard.fsutil.atomic_write`).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeguard.fsutil import atomic_write
from edgeguard.kiosk.usb import UsbDevice

__all__ = ["BOOT_ID", "BOOT_ID_ENV", "FILE_NAME", "BootEntry", "BootSet", "read_boot_id"]

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
BOOT_ID_ENV = "EDGEGUARD_BOOT_ID"
FILE_NAME = "kiosk-boot.json"


@dataclass(frozen=True, slots=True)
class BootEntry:
    bus_path: str
    vendor_id: str
    product_id: str
    serial: str | None

    @classmethod
    def of(cls, dev: UsbDevice) -> BootEntry:
        return cls(dev.bus_path, dev.vendor_id, dev.product_id, dev.serial)


def read_boot_id(path: Path = BOOT_ID) -> str:
    """This boot's id as a UUID string. The unit mounts ``/proc`` with ``subset=pid``,
    which hides ``/proc/sys``, so it passes systemd's ``%b`` in ``$EDGEGUARD_BOOT_ID``
    (32 hex digits, the same id without dashes); otherwise the kernel's file is read."""
    given = os.environ.get(BOOT_ID_ENV, "").strip()
    if given:
        with contextlib.suppress(ValueError):
            return str(uuid.UUID(given))
    try:
        return path.read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class BootSet:
    boot_id: str
    entries: frozenset[BootEntry]
    fresh: bool  # recorded in this start (new boot) rather than reloaded

    def contains(self, dev: UsbDevice) -> bool:
        """Same port, same identity: a boot keyboard re-plugged where it was stays allowed."""
        return BootEntry.of(dev) in self.entries

    @classmethod
    def load(cls, state_dir: Path, boot_id: str) -> BootSet | None:
        """This boot's recorded set, or None (missing, unreadable or from another boot)."""
        try:
            doc = json.loads((state_dir / FILE_NAME).read_text())
            if doc.get("boot_id") != boot_id:
                return None
            entries = frozenset(
                BootEntry(str(e["bus_path"]), str(e["vendor_id"]), str(e["product_id"]),
                          None if e.get("serial") is None else str(e["serial"]))
                for e in doc["devices"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return cls(boot_id, entries, fresh=False)

    @classmethod
    def load_or_record(cls, state_dir: Path, boot_id: str,
                       present: Iterable[UsbDevice]) -> BootSet:
        """Reload this boot's set, or record the authorised ``present`` devices as it."""
        known = cls.load(state_dir, boot_id)
        if known is not None:
            return known
        entries = frozenset(BootEntry.of(d) for d in present if d.authorized)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {"boot_id": boot_id, "devices": [
            {"bus_path": e.bus_path, "vendor_id": e.vendor_id, "product_id": e.product_id,
             "serial": e.serial} for e in sorted(entries, key=lambda e: e.bus_path)]}
        atomic_write(state_dir / FILE_NAME, json.dumps(doc, indent=1).encode() + b"\n")
        return cls(boot_id, entries, fresh=True)
