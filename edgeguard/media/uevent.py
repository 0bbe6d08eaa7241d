"""A block-device uevent, parsed from udev properties into a typed :class:`BlockDevice`.

Both the live udev monitor and the replay backend hand this module a plain mapping of
udev properties (``ACTION``, ``DEVPATH``, ``ID_BUS``...). Anything that does not parse
raises :class:`MalformedUevent`; the caller counts and skips it. Nothing here trusts a
property to be well-formed: a kernel name is checked against a strict pattern before it
is ever used to build a ``/dev`` or ``/sys`` path.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.media.kind import MediaKind, classify_kind

__all__ = [
    "Action",
    "BlockDevice",
    "MalformedUevent",
    "Uevent",
    "parse_uevent",
]

#: Kernel block device names we accept: sdb, sdb1, loop3, loop3p1, mmcblk0p2, nvme0n1p1...
_KERNEL_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,30}")
_USB_ID = re.compile(r"[0-9a-fA-F]{4}")
_MAX_TEXT = 256
#: Logical sectors are 512 bytes in the ``size`` attribute and ``ID_PART_ENTRY_SIZE``.
SECTOR = 512
#: The largest size we believe (1 EiB); anything larger is a malformed value.
_MAX_SIZE = 1 << 60
#: The properties edgeguard.media.kind reads (validated as text first).
_KIND_KEYS = ("ID_BUS", "ID_USB_DRIVER", "ID_CDROM", "EDGEGUARD_MEDIA", "EDGEGUARD_MEDIA_KIND",
              "EDGEGUARD_REMOVABLE", "EDGEGUARD_EXTERNAL", "EDGEGUARD_MMC_TYPE")


class MalformedUevent(ValueError):
    """A uevent that cannot be a block-device event we understand."""


class Action(enum.Enum):
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"
    COLDPLUG = "coldplug"  # synthesised at daemon start for devices already present


@dataclass(frozen=True, slots=True)
class BlockDevice:
    """What edgeguard knows about one block device node (a whole disk or a partition)."""

    name: str  # kernel name: sdb, sdb1, loop3p1
    devtype: str  # "disk" or "partition"
    parent: str | None  # the whole disk's kernel name for a partition
    usb: bool  # on the USB bus (ID_BUS=usb or a /usb path in DEVPATH)
    vendor_id: str | None = None  # four lowercase hex digits
    product_id: str | None = None
    serial: str | None = None
    vendor: str | None = None
    model: str | None = None
    size: int | None = None  # bytes
    fs_type: str | None = None  # blkid ID_FS_TYPE: vfat, ext4, crypto_LUKS, BitLocker...
    fs_version: str | None = None
    fs_usage: str | None = None  # filesystem, crypto, raid, other
    part_table: str | None = None  # ID_PART_TABLE_TYPE on a partitioned disk: gpt, dos
    usb_syspath: str | None = None  # /sys path of the USB interface/device, for de-authorising
    rule_ro: bool = False  # the shipped udev rule ran and set the ro flag
    exempt: bool = False  # the admin's exemption (`media exempt`), keyed on this very port
    exempt_ignored: bool = False  # an exemption not keyed on this port (legacy, serial-keyed)
    kind: MediaKind = MediaKind.INTERNAL  # how it is attached (edgeguard.media.kind)
    id_path: str | None = None  # udev ID_PATH: the physical port, which no device can claim
    part_table_uuid: str | None = None  # ID_PART_TABLE_UUID (content: the device chooses it)

    @property
    def protected(self) -> bool:
        """A removable medium the udev rule makes read-only (every kind but internal)."""
        return self.usb or self.kind.protected

    @property
    def kind_name(self) -> str:
        return MediaKind.USB.value if self.usb and not self.kind.protected else self.kind.value

    @property
    def devnode(self) -> str:
        return f"/dev/{self.name}"

    @property
    def disk(self) -> str:
        """The whole disk this node belongs to (itself for a disk)."""
        return self.parent if self.parent is not None else self.name

    @property
    def identity(self) -> tuple[str, str, str] | None:
        """(vendor id, product id, serial) when all three are known."""
        if self.vendor_id and self.product_id and self.serial:
            return (self.vendor_id, self.product_id, self.serial)
        return None


@dataclass(frozen=True, slots=True)
class Uevent:
    action: Action
    device: BlockDevice
    seqnum: int | None = None


def _text(props: Mapping[str, str], key: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedUevent(f"{key} is not text")
    value = value.strip()
    if not value:
        return None
    if len(value) > _MAX_TEXT or not value.isprintable():
        raise MalformedUevent(f"{key} is too long or not printable")
    return value


def _usb_id(props: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = _text(props, key)
        if value is not None:
            if not _USB_ID.fullmatch(value):
                raise MalformedUevent(f"{key}={value!r} is not a USB id")
            return value.lower()
    return None


def _int(props: Mapping[str, str], key: str) -> int | None:
    value = _text(props, key)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise MalformedUevent(f"{key}={value!r} is not a number")
    number = int(value)
    if number > _MAX_SIZE:
        raise MalformedUevent(f"{key}={value!r} is out of range")
    return number


def _usb_syspath(devpath: str) -> str | None:
    """The USB interface a block device hangs off (``.../1-1/1-1:1.0``), if any.

    De-authorising the mass-storage *interface* removes the disk while leaving other
    functions of a composite device alone; it needs Linux >= 4.4.
    """
    parts = devpath.split("/")
    for index in range(len(parts) - 1, 0, -1):
        if re.fullmatch(r"\d+-[\d.]+:\d+\.\d+", parts[index]):
            return "/sys" + "/".join(parts[: index + 1])
    return None


def parse_uevent(props: object) -> Uevent:
    """Parse one block-subsystem uevent; raise :class:`MalformedUevent` on anything odd."""
    if not isinstance(props, Mapping):
        raise MalformedUevent("uevent is not a mapping")
    action_text = _text(props, "ACTION")
    try:
        action = Action(action_text)
    except ValueError:
        raise MalformedUevent(f"unknown ACTION {action_text!r}") from None
    if _text(props, "SUBSYSTEM") != "block":
        raise MalformedUevent("not a block-subsystem event")
    devpath = _text(props, "DEVPATH")
    if devpath is None or not devpath.startswith("/devices/") or ".." in devpath.split("/"):
        raise MalformedUevent(f"bad DEVPATH {devpath!r}")
    segments = devpath.split("/")
    name = segments[-1]
    if not _KERNEL_NAME.fullmatch(name):
        raise MalformedUevent(f"bad kernel name {name!r}")
    devname = _text(props, "DEVNAME")
    if devname is not None and devname not in (name, f"/dev/{name}"):
        raise MalformedUevent(f"DEVNAME {devname!r} does not match DEVPATH")
    devtype = _text(props, "DEVTYPE")
    if devtype not in ("disk", "partition"):
        raise MalformedUevent(f"DEVTYPE {devtype!r} is not disk or partition")
    parent: str | None = None
    if devtype == "partition":
        parent = segments[-2]
        if not _KERNEL_NAME.fullmatch(parent) or parent == name:
            raise MalformedUevent(f"bad parent disk {parent!r}")
    usb_path = _usb_syspath(devpath)
    bus = _text(props, "ID_BUS")
    usb = bus == "usb" or usb_path is not None or "/usb" in devpath
    size_sectors = _int(props, "ID_PART_ENTRY_SIZE") if devtype == "partition" else None
    size_bytes = _int(props, "EDGEGUARD_SIZE")  # set from sysfs by the live source
    if size_bytes is None and size_sectors is not None:
        size_bytes = size_sectors * SECTOR
    seqnum = _int(props, "SEQNUM")
    # as rule 61: exempt only where the port the exemption was keyed on is this device's
    exempt_port = _text(props, "EDGEGUARD_MEDIA_EXEMPT_PORT")
    exempt = exempt_port is not None and exempt_port == _text(props, "ID_PATH")
    device = BlockDevice(
        name=name,
        devtype=devtype,
        parent=parent,
        usb=usb,
        vendor_id=_usb_id(props, "ID_USB_VENDOR_ID", "ID_VENDOR_ID"),
        product_id=_usb_id(props, "ID_USB_MODEL_ID", "ID_MODEL_ID"),
        serial=_text(props, "ID_USB_SERIAL_SHORT") or _text(props, "ID_SERIAL_SHORT"),
        vendor=_text(props, "ID_USB_VENDOR") or _text(props, "ID_VENDOR"),
        model=_text(props, "ID_USB_MODEL") or _text(props, "ID_MODEL"),
        size=size_bytes,
        fs_type=_text(props, "ID_FS_TYPE"),
        fs_version=_text(props, "ID_FS_VERSION"),
        fs_usage=_text(props, "ID_FS_USAGE"),
        part_table=_text(props, "ID_PART_TABLE_TYPE") if devtype == "disk" else None,
        usb_syspath=usb_path,
        rule_ro=_text(props, "EDGEGUARD_MEDIA") == "read-only",
        exempt=exempt,
        exempt_ignored=not exempt and (exempt_port is not None
                                       or _text(props, "EDGEGUARD_MEDIA_EXEMPT") == "1"),
        kind=classify_kind({k: v for k in _KIND_KEYS if (v := _text(props, k)) is not None},
                           name, devpath),
        id_path=_text(props, "ID_PATH"),
        part_table_uuid=_text(props, "ID_PART_TABLE_UUID"),
    )
    return Uevent(action=action, device=device, seqnum=seqnum)
