"""Which kind of medium a block device is, and whether it is protected (read-only unless
the policy allows): the Python twin of ``rules/61-edgeguard-media.rules``.

The udev rule is what enforces; this module names the kind for ``media list``, findings
and audit records, and decides which nodes the daemon tracks. Both judge by *bus and
removability* — the sysfs topology the kernel built and the removable flags the kernel
or the firmware set — never by an identity string (vendor, model, serial) the device
sends, which any device can claim. An internal system disk is whatever has none of the
marks: on a fixed bus (PCI/SATA/virtio), not behind an external-facing PCIe port, no
removable-media flag, not optical.

Inputs are udev properties plus three sysfs facts the live source adds (udev does not
export them as properties): ``EDGEGUARD_REMOVABLE`` (the whole disk's ``removable``
attribute), ``EDGEGUARD_EXTERNAL`` (an ancestor's device ``removable`` attribute says
``removable``: a Thunderbolt/USB4 PCIe tunnel, per ACPI/firmware) and
``EDGEGUARD_MMC_TYPE`` (the card's ``type``: SD, SDIO, MMC). The rule's own
``EDGEGUARD_MEDIA_KIND`` wins when present, and a device either judges protected is
protected (fail closed).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

__all__ = ["MediaKind", "classify_kind"]

_OPTICAL_NAME = re.compile(r"sr\d+")
_USB_SEGMENT = re.compile(r"usb\d+")
_FIREWIRE_SEGMENT = re.compile(r"fw\d+(\.\d+)?")


class MediaKind(enum.Enum):
    """How a medium is attached; every kind but ``internal`` is protected."""

    USB = "usb"  # USB mass storage, BOT or UAS (a SATA/NVMe SSD in a USB enclosure too)
    SD = "sd"  # SD/SDIO card in a built-in reader (sdhci, rtsx); removable MMC cards
    MEMSTICK = "memstick"  # Sony Memory Stick reader
    OPTICAL = "optical"  # CD/DVD/BD drive, internal or external (burners)
    FIREWIRE = "firewire"  # SBP-2 over IEEE 1394
    NVME = "nvme"  # NVMe behind an external-facing PCIe port (Thunderbolt/USB4 enclosure)
    EXTERNAL = "external"  # any other disk behind an external-facing PCIe port
    REMOVABLE = "removable"  # removable-media flag on another bus (eSATA caddy, ...)
    MTP = "mtp"  # phone or camera (MTP/PTP): not a block device, USB interface only
    INTERNAL = "internal"  # none of the above: the machine's own disks, never touched

    @property
    def protected(self) -> bool:
        return self is not MediaKind.INTERNAL


def _flag(props: Mapping[str, str], key: str) -> bool:
    return props.get(key) == "1"


def _computed(props: Mapping[str, str], name: str, devpath: str) -> MediaKind:  # noqa: PLR0911 - one rule per kind, first match wins
    segments = devpath.split("/")
    if _OPTICAL_NAME.fullmatch(name) or _flag(props, "ID_CDROM"):
        return MediaKind.OPTICAL
    if (props.get("ID_BUS") == "usb" or props.get("ID_USB_DRIVER")
            or any(_USB_SEGMENT.fullmatch(s) for s in segments)):
        return MediaKind.USB
    if "mmc_host" in segments and (props.get("EDGEGUARD_MMC_TYPE") in ("SD", "SDIO")
                                   or _flag(props, "EDGEGUARD_REMOVABLE")):
        return MediaKind.SD
    if "memstick" in devpath or name.startswith("mspblk"):
        return MediaKind.MEMSTICK
    if props.get("ID_BUS") == "ieee1394" or any(_FIREWIRE_SEGMENT.fullmatch(s) for s in segments):
        return MediaKind.FIREWIRE
    if _flag(props, "EDGEGUARD_EXTERNAL"):
        return MediaKind.NVME if name.startswith("nvme") else MediaKind.EXTERNAL
    if _flag(props, "EDGEGUARD_REMOVABLE"):
        return MediaKind.REMOVABLE
    return MediaKind.INTERNAL


def classify_kind(props: Mapping[str, str], name: str, devpath: str) -> MediaKind:
    """The kind of block device ``name`` (at ``devpath``) from its udev properties."""
    computed = _computed(props, name, devpath)
    ruled = props.get("EDGEGUARD_MEDIA_KIND")
    if ruled is not None:
        try:
            kind = MediaKind(ruled)
        except ValueError:
            return computed if computed.protected else MediaKind.REMOVABLE
        if kind.protected:
            return kind
    if props.get("EDGEGUARD_MEDIA") == "read-only" and not computed.protected:
        return MediaKind.REMOVABLE  # the rule protected it: never call it internal
    return computed
