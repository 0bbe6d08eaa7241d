"""A USB device as sysfs shows it, and what each of its interfaces is.

The interface classes come from the raw ``descriptors`` attribute (the device descriptor
followed by every configuration's descriptors, as the kernel read them at enumeration).
It is there even while the device is *not* authorised, when no interface directories
exist yet, which is exactly when edgeguard has to decide. Every interface of every
configuration and alternate setting counts: a device may offer a harmless first
configuration and a network one the kernel (or an attacker's driver) could choose.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from edgeguard.kiosk.config import UsbClass

__all__ = [
    "DescriptorError",
    "Descriptors",
    "Interface",
    "UsbDevice",
    "classify",
    "parse_descriptors",
    "read_device",
    "valid_sysname",
]

_DEVICE = struct.Struct("<BBHBBBBHHHBBBB")  # USB 2.0 §9.6.1, 18 bytes
_CONFIG = struct.Struct("<BBHBBBBB")  # §9.6.3, 9 bytes
_INTERFACE = struct.Struct("<BBBBBBBBB")  # §9.6.5, 9 bytes
_DT_DEVICE, _DT_CONFIG, _DT_INTERFACE = 1, 2, 4
_MAX_CONFIGS = 8
#: Device (``1-1.4``) and interface (``1-1.4:1.0``) names; root hubs are ``usbN``.
_SYSNAME = re.compile(r"(usb[0-9]{1,3}|[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6})"
                      r"(:[0-9]{1,3}\.[0-9]{1,3})?")

_SIMPLE = {
    0x01: UsbClass.AUDIO, 0x02: UsbClass.NETWORK, 0x03: UsbClass.HID,
    0x05: UsbClass.PHYSICAL, 0x06: UsbClass.IMAGE, 0x07: UsbClass.PRINTER,
    0x08: UsbClass.MASS_STORAGE, 0x09: UsbClass.HUB, 0x0A: UsbClass.NETWORK,
    0x0B: UsbClass.SMART_CARD, 0x0D: UsbClass.CONTENT_SECURITY, 0x0E: UsbClass.VIDEO,
    0x0F: UsbClass.HEALTHCARE, 0x10: UsbClass.AUDIO_VIDEO, 0x11: UsbClass.BILLBOARD,
    0x12: UsbClass.TYPE_C_BRIDGE, 0xDC: UsbClass.DIAGNOSTIC, 0xFE: UsbClass.APPLICATION,
    0xFF: UsbClass.VENDOR,
}  # fmt: skip


class DescriptorError(ValueError):
    """The descriptors are truncated or inconsistent (counted, and the device refused)."""


def classify(cls: int, subclass: int, protocol: int) -> UsbClass:
    """What one interface is, from its class triple (usb.org "Defined Class Codes")."""
    if cls == 0xE0:
        if (subclass, protocol) == (0x01, 0x01):
            return UsbClass.BLUETOOTH
        if (subclass, protocol) == (0x01, 0x03):
            return UsbClass.NETWORK  # RNDIS
        return UsbClass.WIRELESS
    if cls == 0xEF:
        if (subclass, protocol) == (0x04, 0x01):
            return UsbClass.NETWORK  # RNDIS over Ethernet (misc class)
        return UsbClass.MISCELLANEOUS
    return _SIMPLE.get(cls, UsbClass.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Interface:
    configuration: int
    number: int
    alternate: int
    cls: int
    subclass: int
    protocol: int

    @property
    def triple(self) -> str:
        return f"{self.cls:02x}/{self.subclass:02x}/{self.protocol:02x}"

    @property
    def usb_class(self) -> UsbClass:
        return classify(self.cls, self.subclass, self.protocol)


@dataclass(frozen=True, slots=True)
class Descriptors:
    device_class: tuple[int, int, int]
    vendor_id: str
    product_id: str
    configurations: int
    interfaces: tuple[Interface, ...]


def parse_descriptors(data: bytes) -> Descriptors:
    """Parse a sysfs ``descriptors`` blob. Raises :class:`DescriptorError` when malformed.

    A device with no interface at all is malformed too: it cannot be assessed, so it is
    refused rather than waved through.
    """
    if len(data) < _DEVICE.size or data[0] != _DEVICE.size or data[1] != _DT_DEVICE:
        raise DescriptorError("no valid device descriptor")
    (_l, _t, _usb, d_cls, d_sub, d_proto, _mps, vid, pid, _bcd, _im, _ip, _is,
     n_conf) = _DEVICE.unpack_from(data)
    interfaces: list[Interface] = []
    offset = _DEVICE.size
    seen = 0
    while offset < len(data) and seen < _MAX_CONFIGS:
        if len(data) - offset < _CONFIG.size:
            raise DescriptorError(f"truncated configuration descriptor at byte {offset}")
        length, dtype, total, _n_if, value, _ic, _attr, _power = _CONFIG.unpack_from(data, offset)
        if dtype != _DT_CONFIG or length < _CONFIG.size or total < length:
            raise DescriptorError(f"bad configuration descriptor at byte {offset}")
        end = min(offset + total, len(data))
        interfaces.extend(_interfaces(data, offset + length, end, value))
        offset = end
        seen += 1
    if not interfaces:
        raise DescriptorError("no interface descriptors")
    return Descriptors((d_cls, d_sub, d_proto), f"{vid:04x}", f"{pid:04x}", max(seen, n_conf),
                       tuple(interfaces))


def _interfaces(data: bytes, offset: int, end: int, config: int) -> list[Interface]:
    out: list[Interface] = []
    while offset + 2 <= end:
        length, dtype = data[offset], data[offset + 1]
        if length < 2 or offset + length > end:
            raise DescriptorError(f"bad descriptor length {length} at byte {offset}")
        if dtype == _DT_INTERFACE:
            if length < _INTERFACE.size:
                raise DescriptorError(f"short interface descriptor at byte {offset}")
            _l, _t, number, alt, _n_ep, cls, sub, proto, _ii = _INTERFACE.unpack_from(data, offset)
            out.append(Interface(config, number, alt, cls, sub, proto))
        offset += length
    return out


def valid_sysname(name: str) -> bool:
    """A USB device or interface name as the kernel makes them (no path tricks)."""
    return _SYSNAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class UsbDevice:
    """One USB device: identity (spoofable: vid, pid and serial are the device's word),
    where it sits (``bus_path``, e.g. ``1-1.4``), what it offers, whether it is authorised."""

    bus_path: str
    vendor_id: str
    product_id: str
    serial: str | None
    manufacturer: str | None
    product: str | None
    device_class: str
    interfaces: tuple[Interface, ...]
    authorized: bool
    removable: str | None
    error: str | None = None  # descriptors could not be parsed

    @property
    def identity(self) -> str:
        return f"{self.vendor_id}:{self.product_id}"

    @property
    def classes(self) -> tuple[UsbClass, ...]:
        """The distinct classes offered, in first-seen order."""
        return tuple(dict.fromkeys(i.usb_class for i in self.interfaces))

    @property
    def triples(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.triple for i in self.interfaces))


def _attr(path: Path, name: str) -> str | None:
    try:
        return (path / name).read_text(errors="replace").strip()
    except OSError:
        return None


def read_device(sysfs: Path, bus_path: str) -> UsbDevice:
    """Read a device from ``<sysfs>/bus/usb/devices/<bus_path>``. Raises OSError if gone."""
    if not valid_sysname(bus_path) or ":" in bus_path:
        raise ValueError(f"not a USB device name: {bus_path!r}")
    path = sysfs / "bus" / "usb" / "devices" / bus_path
    raw = (path / "descriptors").read_bytes()
    error: str | None = None
    try:
        desc = parse_descriptors(raw)
        vid, pid, interfaces = desc.vendor_id, desc.product_id, desc.interfaces
        dev_class = "{:02x}/{:02x}/{:02x}".format(*desc.device_class)
    except DescriptorError as exc:
        error = str(exc)
        vid = (_attr(path, "idVendor") or "0000").lower()
        pid = (_attr(path, "idProduct") or "0000").lower()
        interfaces = ()
        dev_class = "??/??/??"
    return UsbDevice(
        bus_path=bus_path, vendor_id=vid, product_id=pid, serial=_attr(path, "serial"),
        manufacturer=_attr(path, "manufacturer"), product=_attr(path, "product"),
        device_class=dev_class, interfaces=interfaces,
        authorized=_attr(path, "authorized") != "0", removable=_attr(path, "removable"),
        error=error,
    )
