"""Phones and cameras (MTP/PTP): no block device, so no read-only; blocked unless allowed.

The udev rule de-authorises the USB interface as it appears (daemon up or down) unless
the administrator allowed it in an earlier rule (``EDGEGUARD_MEDIA_MTP_ALLOW=1``); the
daemon only audits, naming the device, from the rule's own marks. Input is a plain
mapping of udev properties of a ``usb_interface`` event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import Finding, Scalar, Severity

__all__ = ["MTP_ALLOWED", "MTP_BLOCKED", "MTP_BLOCK_FAILED", "MtpEvidence", "MtpInterface",
           "mtp_finding", "parse_mtp"]

FINDING_KIND = "usb"  # edgeguard.findings.MEDIA_KIND
MTP_BLOCKED = "mtp-blocked"
MTP_ALLOWED = "mtp-allowed"
MTP_BLOCK_FAILED = "mtp-block-failed"  # the interface still reads authorized=1
#: PRODUCT=vid/pid/bcd in hex without leading zeros; INTERFACE=class/subclass/protocol.
_PRODUCT = re.compile(r"([0-9a-f]{1,4})/([0-9a-f]{1,4})/[0-9a-f]{1,4}")
_INTERFACE = re.compile(r"\d{1,3}/\d{1,3}/\d{1,3}")
_SYSNAME = re.compile(r"\d{1,3}-[\d.]{1,20}:\d{1,3}\.\d{1,3}")


@dataclass(frozen=True, slots=True)
class MtpInterface:
    name: str  # kernel name, bus-port:config.interface (the physical port)
    vendor_id: str
    product_id: str
    interface: str  # class/subclass/protocol, decimal
    allowed: bool
    syspath: str  # /sys/devices/...: where ``authorized`` is read back

    def ecs_fields(self) -> Mapping[str, Scalar]:
        return {
            "device.id": self.name,
            "edgeguard.usb.bus_path": self.name,
            "edgeguard.usb.vendor_id": self.vendor_id,
            "edgeguard.usb.product_id": self.product_id,
            "edgeguard.usb.interface_classes": (self.interface,),
            "edgeguard.media.kind": "mtp",
            "edgeguard.media.verdict": "allowed" if self.allowed else "blocked",
        }


@dataclass(frozen=True, slots=True)
class MtpEvidence:
    """The interface and, when it still reads authorized after the rule, why not."""

    device: MtpInterface
    error: str | None = None

    def ecs_fields(self) -> Mapping[str, Scalar]:
        fields = dict(self.device.ecs_fields())
        if self.error is not None:
            fields["edgeguard.media.verdict"] = "block-failed"
            fields["error.message"] = self.error
        return fields


def parse_mtp(props: Mapping[str, object]) -> MtpInterface | None:
    """The MTP/PTP interface the rule marked, or None (not one, or not well-formed)."""
    if props.get("EDGEGUARD_MEDIA_KIND") != "mtp" or props.get("ACTION") != "add":
        return None
    devpath, product, iface = (props.get(k) for k in ("DEVPATH", "PRODUCT", "INTERFACE"))
    if not (isinstance(devpath, str) and isinstance(product, str) and isinstance(iface, str)):
        return None
    name = devpath.rsplit("/", 1)[-1]
    match = _PRODUCT.fullmatch(product)
    if match is None or not _INTERFACE.fullmatch(iface) or not _SYSNAME.fullmatch(name):
        return None
    if not devpath.startswith("/devices/") or ".." in devpath.split("/"):
        return None
    return MtpInterface(name, match.group(1).zfill(4), match.group(2).zfill(4), iface,
                        allowed=props.get("EDGEGUARD_MEDIA") == "mtp-allowed",
                        syspath=f"/sys{devpath}")


def mtp_finding(dev: MtpInterface, now: float, error: str | None = None) -> Finding:
    """The record of one interface; ``error``: it was to be blocked but the daemon read
    ``authorized`` back as still 1 (or could not read it), a failure on record."""
    if error is not None:
        subtype, severity = MTP_BLOCK_FAILED, Severity.SEVERE
        verdict = f"NOT de-authorised ({error})"
    elif dev.allowed:
        subtype, severity = MTP_ALLOWED, Severity.MINOR
        verdict = "allowed by the administrator's udev rule"
    else:
        subtype, severity = MTP_BLOCKED, Severity.MINOR
        verdict = "de-authorised: MTP/PTP cannot be read-only, so it is blocked unless allowed"
    return Finding(
        kind=FINDING_KIND,
        subtype=subtype,
        message=f"phone/camera {dev.vendor_id}:{dev.product_id} on port {dev.name}: {verdict}",
        identifier=f"{dev.vendor_id}:{dev.product_id}:{dev.name}",
        severity=severity,
        first_seen=now,
        last_seen=now,
        evidence=MtpEvidence(dev, error),
    )
