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
    Decision,
    EventKind,
    Finding,
    Outcome,
    Scalar,
    Severity,
)
from edgeguard.media.classify import Assessment, Verdict

__all__ = ["FINDING_KIND", "MALFORMED", "SUBTYPES", "VERDICT_SUBTYPES", "MediaEvidence",
           "not_encrypted_finding", "removal_record", "verdict_finding", "verdict_record"]

FINDING_KIND = "usb"
NOT_ENCRYPTED = "not-encrypted"
MALFORMED = "malformed"
#: The finding subtype a node's verdict is proposed as; the decision engine matches the
#: policy's rules on it (the rule id recorded is the matched rule's, or the catalogue's
#: default for the subtype: edgeguard.findings.MEDIA_SUBTYPES).
VERDICT_SUBTYPES = {
    Verdict.READ_ONLY: "non-trust",
    Verdict.NOT_ENCRYPTED: NOT_ENCRYPTED,
    Verdict.WRITE_ALLOWED: "trust-encrypted",
    Verdict.TEMPORARY_ALLOW: "temporary-allow",
    Verdict.BLOCKED: "blocked",
}
SUBTYPES = (*VERDICT_SUBTYPES.values(), MALFORMED)
#: ECS ``volume.bus_type`` of each kind (edgeguard.media.kind names the kind itself).
_BUS_TYPES = {"usb": "usb", "sd": "sd", "memstick": "memstick", "firewire": "ieee1394",
              "nvme": "nvme", "external": "pci", "optical": "scsi"}


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
            "volume.bus_type": _BUS_TYPES.get(dev.kind_name, "unknown"),
            "volume.removable": dev.protected,
            "edgeguard.media.kind": dev.kind_name,
            "edgeguard.media.id_path": dev.id_path,
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


def verdict_finding(assessment: Assessment, now: float) -> Finding:
    """A node's verdict as a proposal to the decision engine (``usb``/<verdict subtype>):
    the engine picks the rule, the mode and the severity; the verdict stays the
    classifier's."""
    dev = assessment.device
    return Finding(
        kind=FINDING_KIND,
        subtype=VERDICT_SUBTYPES[assessment.verdict],
        message=f"{dev.devnode}: {assessment.reason}",
        identifier=f"{dev.vendor_id}:{dev.product_id}:{dev.serial}:{dev.name}",
        severity=Severity.MINOR,
        first_seen=now,
        last_seen=now,
    )


def verdict_record(assessment: Assessment, decision: Decision, writable: bool) -> AuditRecord:
    """The record for one node's verdict; written through ``audited`` (failure by default).
    ``decision``: what the policy said about the verdict (rule id, mode)."""
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
        rule_id=decision.rule_id,
        mode=decision.mode,
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
