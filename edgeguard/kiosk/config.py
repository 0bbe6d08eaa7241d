"""The ``kiosk:`` section of the policy: which USB devices may connect, and radios.

Wigston: "Staff must not connect (whether physically or by using another method such as
Wi-Fi or Bluetooth) any device or hardware to IT systems without permission." A kiosk
therefore authorises a new USB device only when every interface it offers is of an
allowed class (mass storage goes on to the media policy), or when the device is on the
allowlist; HID that appears after boot is flagged or blocked; Bluetooth radios stay
soft-blocked unless ``bluetooth`` is true.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeguard.events import Mode
from edgeguard.policy.types import UsbId, setting

__all__ = [
    "AllowedDevice",
    "AuthorizedDefault",
    "Granularity",
    "KioskConfig",
    "LateHid",
    "RadioKind",
    "UsbClass",
]


class UsbClass(enum.Enum):
    """What an interface is, from bInterfaceClass/SubClass/Protocol (usb.org class codes).

    ``network`` gathers every way a USB device becomes a network interface: CDC
    communications/data (02, 0a), RNDIS (e0/01/03, ef/04/01). ``bluetooth`` is e0/01/01;
    other wireless controllers (e0) are ``wireless``. Vendor-specific (ff) interfaces are
    often Ethernet (ASIX) or Wi-Fi (Realtek) adapters: the class alone cannot tell.
    """

    AUDIO = "audio"  # 01
    NETWORK = "network"  # 02, 0a, RNDIS
    HID = "hid"  # 03 (governed by late_hid, never by allowed_classes)
    PHYSICAL = "physical"  # 05
    IMAGE = "image"  # 06 (PTP cameras)
    PRINTER = "printer"  # 07
    MASS_STORAGE = "mass-storage"  # 08 (then the media policy decides)
    HUB = "hub"  # 09
    SMART_CARD = "smart-card"  # 0b
    CONTENT_SECURITY = "content-security"  # 0d
    VIDEO = "video"  # 0e
    HEALTHCARE = "healthcare"  # 0f
    AUDIO_VIDEO = "audio-video"  # 10
    BILLBOARD = "billboard"  # 11
    TYPE_C_BRIDGE = "type-c-bridge"  # 12
    DIAGNOSTIC = "diagnostic"  # dc
    BLUETOOTH = "bluetooth"  # e0/01/01 (governed by `bluetooth`)
    WIRELESS = "wireless"  # other e0
    MISCELLANEOUS = "miscellaneous"  # ef other than RNDIS
    APPLICATION = "application"  # fe (DFU, IrDA, test)
    VENDOR = "vendor"  # ff
    UNKNOWN = "unknown"  # anything else


class RadioKind(enum.Enum):
    """rfkill radio types (``enum rfkill_type``) other than Bluetooth, which has its own key."""

    WLAN = "wlan"
    UWB = "uwb"
    WIMAX = "wimax"
    WWAN = "wwan"  # a cellular modem: a way off the trust network
    GPS = "gps"
    FM = "fm"
    NFC = "nfc"

    @property
    def rfkill_type(self) -> int:
        return {"wlan": 1, "uwb": 3, "wimax": 4, "wwan": 5, "gps": 6, "fm": 7,
                "nfc": 8}[self.value]


class LateHid(enum.Enum):
    FLAG = "flag"  # authorise it, and report it (keystroke-injection sticks)
    BLOCK = "block"  # keep it de-authorised, and report it


class AuthorizedDefault(enum.Enum):
    """What the kernel does with a new device before edgeguard has decided."""

    NONE = "none"  # authorized_default=0: nothing binds until edgeguard authorises it
    INTERNAL = "internal"  # authorized_default=2: hard-wired ports (built-in camera) only
    KERNEL = "kernel"  # leave the kernel's setting alone (not fail-closed)

    @property
    def sysfs_value(self) -> str | None:
        return {"none": "0", "internal": "2", "kernel": None}[self.value]


class Granularity(enum.Enum):
    DEVICE = "device"  # one refused interface refuses the whole device
    INTERFACE = "interface"  # refuse only those interfaces (interface `authorized`, 4.4+)


@dataclass(frozen=True, slots=True)
class AllowedDevice:
    """A device the trust approved, whatever its classes (a barcode scanner, a dongle)."""

    id: str = setting(None, "Name in the trust's register, written to the audit record.")
    vendor_id: UsbId = setting(None, "USB vendor id (idVendor), four hex digits.")
    product_id: UsbId = setting(None, "USB product id (idProduct), four hex digits.")
    serial: str | None = setting(None, "iSerial as the kernel reports it; any when unset.")
    description: str = setting("", "Free text for the register.")

    def __post_init__(self) -> None:
        for name in ("id", "vendor_id", "product_id"):
            if getattr(self, name) is None:
                raise ValueError(f"allowed device needs {name!r}")


@dataclass(frozen=True, slots=True)
class KioskConfig:
    """Device authorisation on kiosks ("no device connected without permission")."""

    enabled: bool = setting(False, "Authorise USB devices by interface class; radios off.")
    mode: Mode | None = setting(None, "monitor | enforce; defaults to the global mode.")
    allowed_classes: tuple[UsbClass, ...] = setting(
        (UsbClass.MASS_STORAGE, UsbClass.HUB),
        "Interface classes a new device may offer. A device is authorised only when every "
        "interface is allowed (see granularity). hid and bluetooth are governed by "
        "late_hid and bluetooth instead.")
    allowlist: tuple[AllowedDevice, ...] = setting(
        (), "Devices authorised whatever their classes, matched on vid:pid (and serial).")
    late_hid: LateHid = setting(
        LateHid.FLAG, "A keyboard/mouse (HID) that was not present at boot: flag (authorise "
        "and report) or block (keep it de-authorised and report).")
    boot_devices: bool = setting(
        True, "Authorise the devices present when edgeguard first starts in a boot (the "
        "kiosk's own keyboard and mouse), recorded in state_directory/kiosk-boot.json.")
    bluetooth: bool = setting(
        False, "Allow Bluetooth: adapters (e0/01/01) may connect and radios may be "
        "unblocked. When false, radios are soft-blocked through /dev/rfkill and an unblock "
        "by anyone else is reverted.")
    block_radios: tuple[RadioKind, ...] = setting(
        (), "Further radio types kept soft-blocked through /dev/rfkill, with the same "
        "revert (e.g. wwan: a cellular modem bypasses the trust network). Not wlan on a "
        "kiosk that uses Wi-Fi.")
    authorized_default: AuthorizedDefault = setting(
        AuthorizedDefault.NONE, "Written to every root hub's authorized_default at start "
        "(enforce mode), so devices plugged while edgeguard is down stay de-authorised.")
    granularity: Granularity = setting(
        Granularity.DEVICE, "device: a refused interface refuses the device; interface: "
        "refuse only that interface and keep the rest (interface_authorized_default=0 on "
        "root hubs, then edgeguard authorises interfaces one by one).")
    sysfs_root: str = setting("/sys", "Where sysfs is mounted (tests point it elsewhere).")
    rfkill_device: str = setting("/dev/rfkill", "The rfkill control device.")

    def __post_init__(self) -> None:
        for index, cls in enumerate(self.allowed_classes):
            if cls in (UsbClass.HID, UsbClass.BLUETOOTH):
                key = "late_hid" if cls is UsbClass.HID else "bluetooth"
                raise ValueError(f"allowed_classes[{index}]: {cls.value} is governed by "
                                 f"{key!r}, not allowed_classes")
        seen: dict[str, int] = {}
        for index, dev in enumerate(self.allowlist):
            if dev.id in seen:
                raise ValueError(f"allowlist[{index}]: duplicate device id {dev.id!r} "
                                 f"(also allowlist[{seen[dev.id]}])")
            seen[dev.id] = index
