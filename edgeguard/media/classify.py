"""Decide what each node of one USB disk may do: the media policy as a pure function.

Input: the whole disk and the partitions seen so far, the ``media`` policy section,
the hardware catalogue and any temporary allow. Output: one :class:`Assessment` per
node with a :class:`Verdict` and the reason in words. No I/O here, so the same code
judges live devices, replayed uevents and fuzzed garbage.

Kernel fact that shapes the result: a partition is writable only if the whole disk's
read-only flag is clear too (``bdev_read_only`` checks the disk), so a registered disk
holding an encrypted *partition* gets its disk flag lifted while its plaintext
partitions keep their own flag.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from edgeguard.media.allow import TemporaryAllow
from edgeguard.media.catalogue import EncryptedModel, HardwareCatalogue
from edgeguard.media.config import MediaConfig, NonTrustMode, TrustedDevice
from edgeguard.media.uevent import BlockDevice

__all__ = ["Assessment", "TrustMatch", "Verdict", "encryption_of", "evaluate", "match_trust"]


class Verdict(enum.Enum):
    READ_ONLY = "read-only"
    NOT_ENCRYPTED = "not-encrypted"  # registered but plaintext: read-only plus a finding
    WRITE_ALLOWED = "write-allowed"
    TEMPORARY_ALLOW = "temporary-allow"
    BLOCKED = "blocked"  # kiosk: de-authorised, not readable

    @property
    def writable(self) -> bool:
        return self in (Verdict.WRITE_ALLOWED, Verdict.TEMPORARY_ALLOW)

    @property
    def action(self) -> str:
        """ECS ``event.action`` of the record for one node."""
        return {
            Verdict.READ_ONLY: "usb-read-only",
            Verdict.NOT_ENCRYPTED: "usb-read-only",
            Verdict.WRITE_ALLOWED: "usb-write-allowed",
            Verdict.TEMPORARY_ALLOW: "usb-temporary-allow",
            Verdict.BLOCKED: "usb-blocked",
        }[self]


@dataclass(frozen=True, slots=True)
class TrustMatch:
    """How a device compares with the register. Identity is spoofable, so we keep which
    attributes matched even when the match is partial (and therefore not trusted)."""

    device_id: str | None = None  # register id when every required attribute matched
    candidate: str | None = None  # closest register entry on a partial match
    matched: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()

    @property
    def trusted(self) -> bool:
        return self.device_id is not None


@dataclass(frozen=True, slots=True)
class Assessment:
    device: BlockDevice
    verdict: Verdict
    reason: str
    trust: TrustMatch
    encryption: str | None = None  # luks1, luks2, bitlocker, hardware
    hardware_model: EncryptedModel | None = None
    allow: TemporaryAllow | None = None


def _compare(device: BlockDevice, size: int | None, entry: TrustedDevice) -> TrustMatch:
    checks = [
        ("vendor_id", device.vendor_id == entry.vendor_id),
        ("product_id", device.product_id == entry.product_id),
        ("serial", device.serial is not None and device.serial == entry.serial),
    ]
    if entry.size is not None:
        checks.append(("size", size == entry.size))
    matched = tuple(name for name, ok in checks if ok)
    mismatched = tuple(name for name, ok in checks if not ok)
    if not mismatched:
        return TrustMatch(device_id=entry.id, matched=matched)
    return TrustMatch(candidate=entry.id, matched=matched, mismatched=mismatched)


def match_trust(device: BlockDevice, size: int | None,
                register: Sequence[TrustedDevice]) -> TrustMatch:
    """Full match on vid, pid, serial (and size when registered) or the best partial one."""
    best = TrustMatch()
    for entry in register:
        result = _compare(device, size, entry)
        if result.trusted:
            return result
        # Only a serial match is worth naming: vid:pid alone is every stick of that model.
        if "serial" in result.matched and len(result.matched) > len(best.matched):
            best = result
    return best


def encryption_of(device: BlockDevice) -> str | None:
    """Software encryption blkid reports on this node (LUKS1/2, BitLocker)."""
    fs_type = (device.fs_type or "").lower()
    if fs_type == "crypto_luks":
        return f"luks{device.fs_version}" if device.fs_version in ("1", "2") else "luks"
    if fs_type == "bitlocker":
        return "bitlocker"
    return None


def evaluate(disk: BlockDevice, partitions: Sequence[BlockDevice], config: MediaConfig,
             catalogue: HardwareCatalogue, allow: TemporaryAllow | None) -> list[Assessment]:
    """One assessment per node, the disk first. ``disk`` may be a partition's stand-in
    when only the partition is known (its ID_* properties are the disk's)."""
    nodes = [disk, *partitions]
    trust = match_trust(disk, disk.size if disk.devtype == "disk" else None,
                        config.trusted_devices)

    def every(verdict: Verdict, reason: str,
              allow: TemporaryAllow | None = None) -> list[Assessment]:
        return [Assessment(node, verdict, reason, trust, encryption_of(node), allow=allow)
                for node in nodes]

    if allow is not None:
        return every(Verdict.TEMPORARY_ALLOW,
                     f"temporary allow by {allow.by} until {allow.until_text}: {allow.reason}",
                     allow=allow)
    if not trust.trusted:
        why = "not in the trust's register"
        if trust.candidate is not None:
            why += (f" (closest entry {trust.candidate}: matched {', '.join(trust.matched)}; "
                    f"differs in {', '.join(trust.mismatched)})")
        if config.non_trust is NonTrustMode.BLOCKED:
            return every(Verdict.BLOCKED, why + "; USB storage is blocked by policy")
        return every(Verdict.READ_ONLY, why + "; readable, never writable")
    if not config.require_encryption:
        return every(Verdict.WRITE_ALLOWED,
                     f"registered as {trust.device_id}; policy does not require encryption")
    model = catalogue.lookup(disk.vendor_id, disk.product_id)
    if model is not None:
        return [Assessment(node, Verdict.WRITE_ALLOWED,
                           f"registered as {trust.device_id}; hardware-encrypted model "
                           f"{model.vendor} {model.model}", trust, "hardware", model)
                for node in nodes]
    return _trusted_plaintext_or_containers(disk, partitions, trust)


def _trusted_plaintext_or_containers(disk: BlockDevice, partitions: Sequence[BlockDevice],
                                     trust: TrustMatch) -> list[Assessment]:
    """A registered device that must be encrypted: writable only inside its containers."""
    nodes = [disk, *partitions]
    registered = f"registered as {trust.device_id}"
    containers = [node.name for node in nodes if encryption_of(node) is not None]
    if not containers:
        if disk.devtype == "disk" and disk.part_table is not None and not partitions:
            verdict, reason = Verdict.READ_ONLY, "partition table seen, waiting for partitions"
        else:
            verdict, reason = Verdict.NOT_ENCRYPTED, ("not encrypted (no LUKS/BitLocker "
                                                      "container, not a hardware-encrypted model)")
        return [Assessment(node, verdict, f"{registered}; {reason}", trust) for node in nodes]
    out = []
    for node in nodes:
        enc = encryption_of(node)
        if enc is not None:
            out.append(Assessment(node, Verdict.WRITE_ALLOWED, f"{registered}; {enc} container",
                                  trust, enc))
        elif node is disk:
            out.append(Assessment(node, Verdict.WRITE_ALLOWED, f"{registered}; disk flag lifted "
                                  f"so its container {', '.join(containers)} is writable", trust))
        else:
            out.append(Assessment(node, Verdict.READ_ONLY,
                                  f"{registered}; plaintext partition stays read-only", trust))
    return out
