"""Exempt devices: the administrator's udev exemption (a removable *system* disk), which
the daemon never touches but always audits, and watches for its identity on another port.

An exemption is keyed on ``ID_PATH`` (the physical port: a device cannot claim to be
plugged somewhere else) and the partition-table UUID (docs/media.md). The identity a
device *sends* — serial, partition-table UUID — can be cloned, so when an identity that
was seen exempt on one port turns up on another port (exempt or not), that is reported:
it is the signature of a stick cloned from the system disk, or of an old serial-keyed
exemption being abused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import Finding, Scalar, Severity
from edgeguard.media.uevent import BlockDevice

__all__ = ["EXEMPT", "EXEMPT_IGNORED", "EXEMPT_MOVED", "ExemptEvidence", "ExemptWatch"]

FINDING_KIND = "usb"  # edgeguard.findings.MEDIA_KIND
EXEMPT = "exempt"  # finding subtypes (edgeguard.findings.MEDIA_SUBTYPES)
EXEMPT_MOVED = "exempt-identity-moved"
EXEMPT_IGNORED = "exempt-ignored"


@dataclass(frozen=True, slots=True)
class ExemptEvidence:
    device: BlockDevice
    exempt_path: str | None = None  # where the identity was seen exempt before

    def ecs_fields(self) -> Mapping[str, Scalar]:
        dev = self.device
        fields: dict[str, Scalar] = {
            "volume.device_name": dev.devnode,
            "volume.device_type": dev.devtype,
            "volume.serial_number": dev.serial,
            "volume.vendor_id": dev.vendor_id,
            "volume.product_id": dev.product_id,
            "edgeguard.media.kind": dev.kind_name,
            "edgeguard.media.id_path": dev.id_path,
            "edgeguard.media.part_table_uuid": dev.part_table_uuid,
            "edgeguard.media.exempt": dev.exempt,
            "edgeguard.media.exempt_ignored": dev.exempt_ignored or None,
            "edgeguard.media.exempt_path": self.exempt_path,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _identities(dev: BlockDevice) -> list[str]:
    out = []
    if dev.serial:
        out.append(f"serial:{dev.serial}")
    if dev.part_table_uuid:
        out.append(f"ptuuid:{dev.part_table_uuid}")
    return out


class ExemptWatch:
    """Remembers (bounded) which identities were seen exempt on which port."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._paths: OrderedDict[str, str] = OrderedDict()  # identity -> ID_PATH
        self._recorded: set[str] = set()  # exempt nodes already audited

    def observe(self, dev: BlockDevice, now: float) -> list[Finding]:
        """Findings for one whole-disk uevent: ``exempt`` the first time an exempt node
        is seen, ``exempt-ignored`` the first time a node carries an exemption not keyed on
        its own port (it stays protected), ``exempt-identity-moved`` when an exempt
        identity is on another port."""
        out: list[Finding] = []
        if dev.devtype != "disk":
            return out
        for ident in _identities(dev):
            path = self._paths.get(ident)
            if path is not None and dev.id_path != path:
                out.append(_finding(dev, EXEMPT_MOVED, now, path, severity=Severity.MODERATE,
                                    message=f"{dev.devnode}: {ident} was exempt on {path}, now on "
                                    f"{dev.id_path or 'an unknown port'}"))
                break
        if dev.exempt_ignored and dev.name not in self._recorded:
            self._recorded.add(dev.name)
            out.append(_finding(dev, EXEMPT_IGNORED, now, None, severity=Severity.MODERATE,
                                message=f"{dev.devnode}: ignored an exemption not keyed on "
                                f"its port {dev.id_path or '(none)'} (a legacy "
                                "EDGEGUARD_MEDIA_EXEMPT=1 rule?); protected as any other"))
        if dev.exempt:
            for ident in _identities(dev):
                self._paths.setdefault(ident, dev.id_path or "")
                while len(self._paths) > self._max:
                    self._paths.popitem(last=False)
            if dev.name not in self._recorded:
                self._recorded.add(dev.name)
                out.append(_finding(dev, EXEMPT, now, None, severity=Severity.MINOR,
                                    message=f"{dev.devnode}: exempt by the administrator's "
                                    f"udev rule (port {dev.id_path}); not judged"))
        return out

    def forget(self, name: str) -> None:
        self._recorded.discard(name)


def _finding(dev: BlockDevice, subtype: str, now: float, path: str | None, *,
             severity: Severity, message: str) -> Finding:
    return Finding(
        kind=FINDING_KIND,
        subtype=subtype,
        message=message,
        identifier=f"{dev.serial}:{dev.part_table_uuid}:{dev.id_path}",
        severity=severity,
        first_seen=now,
        last_seen=now,
        evidence=ExemptEvidence(dev, path),
    )
