"""The kiosk decision about one USB device: authorise it, or keep it out, and why.

Order matters and is the policy's meaning:

1. descriptors that cannot be parsed: refused (cannot be assessed, fail closed);
2. the allowlist (vid:pid, and serial when given): authorised whatever it offers;
3. the boot set (the kiosk's own keyboard/mouse): authorised;
4. every interface of every configuration must be allowed: ``allowed_classes``, HID per
   ``late_hid`` (flag: authorised and reported; block: refused), Bluetooth per
   ``bluetooth``. With ``granularity: interface`` a device keeps its allowed interfaces and
   only the refused ones are listed; with ``device`` one refused interface refuses it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeguard.events import Severity
from edgeguard.kiosk.bootset import BootSet
from edgeguard.kiosk.config import Granularity, KioskConfig, LateHid, UsbClass
from edgeguard.kiosk.usb import UsbDevice

__all__ = ["REFUSING", "Assessment", "Reason", "Verdict", "assess"]


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Reason(enum.Enum):
    """Why; the refusing ones are the finding subtypes (``usb-device``/``network-adapter``)."""

    ALLOWLISTED = "allowlisted"
    BOOT_DEVICE = "boot-device"
    ALLOWED_CLASSES = "allowed-classes"
    LATE_HID = "late-hid"
    NETWORK_ADAPTER = "network-adapter"
    BLUETOOTH = "bluetooth"
    WIRELESS = "wireless"
    VENDOR_CLASS = "vendor-class"
    DISALLOWED_CLASS = "disallowed-class"
    MALFORMED = "malformed-descriptors"

    @property
    def severity(self) -> Severity:
        if self in (Reason.LATE_HID, Reason.NETWORK_ADAPTER):
            return Severity.SEVERE  # keystroke injection; a bridge around the trust network
        if self in (Reason.BLUETOOTH, Reason.WIRELESS, Reason.VENDOR_CLASS, Reason.MALFORMED):
            return Severity.MODERATE
        return Severity.MINOR


#: The reasons a device (or some of its interfaces) is refused: the finding subtypes.
REFUSING = (Reason.LATE_HID, Reason.NETWORK_ADAPTER, Reason.BLUETOOTH, Reason.WIRELESS,
            Reason.VENDOR_CLASS, Reason.DISALLOWED_CLASS, Reason.MALFORMED)

#: Which refusing reason names a refused class, most telling first.
_CLASS_REASON = (
    (UsbClass.HID, Reason.LATE_HID),
    (UsbClass.NETWORK, Reason.NETWORK_ADAPTER),
    (UsbClass.BLUETOOTH, Reason.BLUETOOTH),
    (UsbClass.WIRELESS, Reason.WIRELESS),
    (UsbClass.VENDOR, Reason.VENDOR_CLASS),
)


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: Verdict
    reason: Reason
    #: Classes refused (empty when everything is allowed).
    refused: tuple[UsbClass, ...] = ()
    #: Interface numbers (of the active configuration) to keep de-authorised when the
    #: device itself is authorised with ``granularity: interface``.
    refused_interfaces: tuple[int, ...] = ()
    flagged: bool = False  # a late HID authorised under late_hid: flag
    allowlist_id: str | None = None

    @property
    def finding_reason(self) -> Reason | None:
        """The reason a finding is raised for, if any (refusals and flagged HID)."""
        if self.verdict is Verdict.DENY or self.refused_interfaces or self.flagged:
            return self.reason
        return None


def _allowed(cls: UsbClass, config: KioskConfig) -> bool:
    if cls is UsbClass.HID:
        return config.late_hid is LateHid.FLAG
    if cls is UsbClass.BLUETOOTH:
        return config.bluetooth
    return cls in config.allowed_classes


def _reason_for(refused: tuple[UsbClass, ...]) -> Reason:
    for cls, reason in _CLASS_REASON:
        if cls in refused:
            return reason
    return Reason.DISALLOWED_CLASS


def _by_identity(dev: UsbDevice, config: KioskConfig, boot: BootSet | None
                 ) -> Assessment | None:
    if dev.error is not None:
        return Assessment(Verdict.DENY, Reason.MALFORMED, (UsbClass.UNKNOWN,))
    for entry in config.allowlist:
        if (entry.vendor_id, entry.product_id) == (dev.vendor_id, dev.product_id) and \
                entry.serial in (None, dev.serial):
            return Assessment(Verdict.ALLOW, Reason.ALLOWLISTED, allowlist_id=entry.id)
    if config.boot_devices and boot is not None and boot.contains(dev):
        return Assessment(Verdict.ALLOW, Reason.BOOT_DEVICE)
    return None


def assess(dev: UsbDevice, config: KioskConfig, boot: BootSet | None) -> Assessment:
    known = _by_identity(dev, config, boot)
    if known is not None:
        return known
    refused = tuple(c for c in dev.classes if not _allowed(c, config))
    has_hid = UsbClass.HID in dev.classes
    if not refused:
        reason = Reason.LATE_HID if has_hid else Reason.ALLOWED_CLASSES
        return Assessment(Verdict.ALLOW, reason, flagged=has_hid)
    reason = _reason_for(refused)
    if config.granularity is Granularity.INTERFACE and len(refused) < len(dev.classes):
        numbers = tuple(sorted({i.number for i in dev.interfaces
                                if i.usb_class in refused and i.alternate == 0}))
        return Assessment(Verdict.ALLOW, reason, refused, numbers,
                          flagged=has_hid and UsbClass.HID not in refused)
    return Assessment(Verdict.DENY, reason, refused)
