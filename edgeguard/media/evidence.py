"""What a media record says: ECS ``volume.*`` fields plus edgeguard's own verdict fields.

ECS names used: ``volume.bus_type``, ``volume.vendor_id``, ``volume.product_id``,
``volume.serial_number``, ``volume.size``, ``volume.writable``,
``volume.file_system_type`` (the "fs_type" of the issue), ``volume.device_name``,
``volume.device_type``, ``volume.vendor_name``, ``volume.product_name``,
``volume.removable``. The trust match is spelled out (which attributes matched and
which did not) because a USB identity is whatever the device claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.ecs import iso_timestamp
from edgeguard.events import (
    AuditRecord,
    EventKind,
    Finding,
    Mode,
    Outcome,
    Scalar,
    Severity,
)
from edgeguard.media.classify import Assessment, Verdict

__all__ = ["FINDING_KIND", "SUBTYPES", "MediaEvidence", "not_encrypted_finding",
           "removal_record", "verdict_record"]

FINDING_KIND = "usb"
NOT_ENCRYPTED = "not-encrypted"
SUBTYPES = (NOT_ENCRYPTED,)

#: rule.id per verdict, so a SIEM can count by policy row.
RULE_IDS = {
    Verdict.READ_ONLY: "media-non-trust-read-only",
    Verdict.NOT_ENCRYPTED: "media-trust-not-encrypted",
    Verdict.WRITE_ALLOWED: "media-trust-encrypted",
    Verdict.TEMPORARY_ALLOW: "media-temporary-allow",
    Verdict.BLOCKED: "media-non-trust-blocked",
}


@dataclass(frozen=True, slots=True)
class MediaEvidence:
    assessment: Assessment
    writable: bool  # what the node is after acting (False in monitor mode)

    def ecs_fields(self) -> Mapping[str, Scalar]:
        a = self.assessment
        dev = a.device
        fields: dict[str, Scalar] = {
            "volume.device_name": dev.devnode,
            "volume.device_type": dev.devtype,
            "volume.bus_type": "usb" if dev.usb else "unknown",
            "volume.removable": True,
            "volume.vendor_id": dev.vendor_id,
            "volume.product_id": dev.product_id,
            "volume.serial_number": dev.serial,
            "volume.vendor_name": dev.vendor,
            "volume.product_name": dev.model,
            "volume.size": dev.size,
            "volume.file_system_type": dev.fs_type,
            "volume.writable": self.writable,
            "edgeguard.media.verdict": a.verdict.value,
            "edgeguard.media.reason": a.reason,
            "edgeguard.media.parent": dev.parent,
            "edgeguard.media.encryption": a.encryption,
            "edgeguard.media.trust.device_id": a.trust.device_id,
            "edgeguard.media.trust.candidate": a.trust.candidate,
            "edgeguard.media.trust.matched": a.trust.matched,
            "edgeguard.media.trust.mismatched": a.trust.mismatched,
        }
        if a.hardware_model is not None:
            fields["edgeguard.media.hardware_model"] = (
                f"{a.hardware_model.vendor} {a.hardware_model.model}")
        if a.allow is not None:
            fields["edgeguard.media.allow.by"] = a.allow.by
            fields["edgeguard.media.allow.reason"] = a.allow.reason
            fields["edgeguard.media.allow.until"] = iso_timestamp(a.allow.until)
            fields["edgeguard.media.allow.granted_at"] = iso_timestamp(a.allow.granted_at)
        return {k: v for k, v in fields.items() if v is not None and v != ()}


def verdict_record(assessment: Assessment, mode: Mode, writable: bool) -> AuditRecord:
    """The record for one node's verdict; written through ``audited`` (failure by default)."""
    dev = assessment.device
    verb = {True: "writable", False: "read-only"}[assessment.verdict.writable]
    if assessment.verdict is Verdict.BLOCKED:
        verb = "blocked"
    return AuditRecord(
        action=assessment.verdict.action,
        message=f"{dev.devnode} {verb}: {assessment.reason}",
        kind=EventKind.EVENT,
        category=("host", "configuration"),
        event_type=("change",),
        rule_id=RULE_IDS[assessment.verdict],
        mode=mode,
        fields=MediaEvidence(assessment, writable).ecs_fields(),
    )


def not_encrypted_finding(assessment: Assessment, now: float) -> Finding:
    """The finding "trust device not encrypted" (LT2 §7, Wigston): a fact, kept read-only."""
    dev = assessment.device
    return Finding(
        kind=FINDING_KIND,
        subtype=NOT_ENCRYPTED,
        message=f"trust device {assessment.trust.device_id} ({dev.devnode}) is not encrypted; "
                "kept read-only",
        identifier=f"{dev.vendor_id}:{dev.product_id}:{dev.serial}",
        severity=Severity.MODERATE,
        category=("host", "configuration"),
        event_type=("info",),
        first_seen=now,
        last_seen=now,
        evidence=MediaEvidence(assessment, writable=False),
    )


def removal_record(assessment: Assessment) -> AuditRecord:
    dev = assessment.device
    return AuditRecord(
        action="usb-removed",
        message=f"{dev.devnode} removed",
        kind=EventKind.EVENT,
        category=("host",),
        event_type=("deletion",),
        outcome=Outcome.SUCCESS,
        fields=MediaEvidence(assessment, writable=False).ecs_fields(),
    )
