"""The ``media:`` section of the policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeguard.events import Mode
from edgeguard.policy.types import ByteSize, Duration, UsbId, setting

__all__ = ["MediaConfig", "NonTrustMode", "TrustedDevice"]


class NonTrustMode(enum.Enum):
    READ_ONLY = "read-only"  # readable, never writable (LT2 §7)
    BLOCKED = "blocked"  # kiosk: not mounted, not readable


@dataclass(frozen=True, slots=True)
class TrustedDevice:
    """One trust-issued device. Identity is vendor id, product id and serial (spoofable:
    the audit record says which attributes matched)."""

    id: str = setting(None, "Name of the device in the trust's register, e.g. 'IT-0042'.")
    vendor_id: UsbId = setting(None, "USB vendor id, four hex digits.")
    product_id: UsbId = setting(None, "USB product id, four hex digits.")
    serial: str = setting(None, "USB serial number (iSerial) as the kernel reports it.")
    size: ByteSize | None = setting(None, "Expected capacity; when set it must match too.",
                                    unit="bytes")
    description: str = setting("", "Free text for the register (holder, department).")

    def __post_init__(self) -> None:
        for name in ("id", "vendor_id", "product_id", "serial"):
            if getattr(self, name) is None:
                raise ValueError(f"trusted device needs {name!r}")


@dataclass(frozen=True, slots=True)
class MediaConfig:
    enabled: bool = setting(True, "Watch USB block devices.")
    mode: Mode | None = setting(None, "monitor | enforce; defaults to the global mode.")
    non_trust: NonTrustMode = setting(
        NonTrustMode.READ_ONLY, "What happens to USB storage not in the register.")
    require_encryption: bool = setting(
        True, "Trust devices are writable only inside an encrypted container.")
    mount: bool = setting(
        False, "Mount non-trust media read-only (ro,nosuid,nodev,noexec) under mount_root.")
    mount_root: str = setting("/run/edgeguard/media", "Where edgeguard mounts media.")
    trusted_devices: tuple[TrustedDevice, ...] = setting((), "The trust's device register.")
    hardware_catalogue: str | None = setting(
        None, "YAML catalogue of hardware-encrypted USB models (vid:pid); unset: the one "
        "shipped with edgeguard (hardware/encrypted-usb.yaml).")
    allow_max_duration: Duration = setting(
        Duration(8 * 3600), "Longest temporary write allow `edgeguard media allow` may grant.",
        unit="duration", minimum=60)
    max_devices: int = setting(
        256, "Block devices (disks + partitions) tracked at once; more are left read-only "
        "by the udev rule and counted as dropped.", unit="devices", minimum=8, maximum=65536)

    def __post_init__(self) -> None:
        seen_ids: dict[str, int] = {}
        seen_keys: dict[tuple[str, str, str], int] = {}
        for index, dev in enumerate(self.trusted_devices):
            if dev.id in seen_ids:
                raise ValueError(f"trusted_devices[{index}]: duplicate device id {dev.id!r} "
                                 f"(also trusted_devices[{seen_ids[dev.id]}])")
            key = (dev.vendor_id, dev.product_id, dev.serial)
            if key in seen_keys:
                raise ValueError(f"trusted_devices[{index}]: duplicate device "
                                 f"{dev.vendor_id}:{dev.product_id} serial {dev.serial!r} "
                                 f"(also trusted_devices[{seen_keys[key]}])")
            seen_ids[dev.id] = index
            seen_keys[key] = index
