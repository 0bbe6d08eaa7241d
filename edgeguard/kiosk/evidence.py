"""What the kiosk records about a USB device or a radio, as ECS fields.

``device.*`` is ECS's device set (manufacturer, model, serial); ``edgeguard.usb.*``
carries what ECS has no name for: vid/pid, the interface class triples, the bus path and
the verdict. Identity is the device's own claim (spoofable), which is why the bus path
and classes are always recorded next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import Scalar
from edgeguard.kiosk.assess import Assessment, Reason
from edgeguard.kiosk.rfkill import RfkillEvent
from edgeguard.kiosk.usb import UsbDevice

__all__ = ["RadioEvidence", "UsbEvidence", "device_row"]


@dataclass(frozen=True, slots=True)
class UsbEvidence:
    device: UsbDevice
    assessment: Assessment

    def ecs_fields(self) -> Mapping[str, Scalar]:
        dev, verdict = self.device, self.assessment
        fields: dict[str, Scalar] = {
            "device.id": dev.bus_path,
            "device.model.identifier": dev.identity,
            "edgeguard.usb.bus_path": dev.bus_path,
            "edgeguard.usb.vendor_id": dev.vendor_id,
            "edgeguard.usb.product_id": dev.product_id,
            "edgeguard.usb.device_class": dev.device_class,
            "edgeguard.usb.interface_classes": dev.triples,
            "edgeguard.usb.classes": tuple(c.value for c in dev.classes),
            "edgeguard.usb.verdict": verdict.verdict.value,
            "edgeguard.usb.reason": verdict.reason.value,
        }
        optional: dict[str, Scalar] = {
            "device.serial_number": dev.serial,
            "edgeguard.usb.serial": dev.serial,
            "device.manufacturer": dev.manufacturer,
            "device.model.name": dev.product,
            "edgeguard.usb.removable": dev.removable,
            "edgeguard.usb.allowlist_id": verdict.allowlist_id,
            "error.message": dev.error,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        if verdict.refused:
            fields["edgeguard.usb.refused_classes"] = tuple(c.value for c in verdict.refused)
        if verdict.refused_interfaces:
            fields["edgeguard.usb.refused_interfaces"] = verdict.refused_interfaces
        if verdict.flagged:
            fields["edgeguard.usb.flagged"] = True
        return fields


def device_row(device: UsbDevice, assessment: Assessment) -> dict[str, Scalar]:
    """One line of ``edgeguard kiosk devices``: a state event with the evidence fields."""
    row: dict[str, Scalar] = {"event.kind": "state", "event.action": "usb-device",
                              "event.category": ("host",), "event.type": ("info",)}
    row.update(UsbEvidence(device, assessment).ecs_fields())
    row["edgeguard.usb.authorized"] = device.authorized
    row["edgeguard.usb.boot_device"] = assessment.reason is Reason.BOOT_DEVICE
    return row


@dataclass(frozen=True, slots=True)
class RadioEvidence:
    event: RfkillEvent

    def ecs_fields(self) -> Mapping[str, Scalar]:
        ev = self.event
        return {
            "edgeguard.rfkill.index": ev.idx,
            "edgeguard.rfkill.type": ev.type_name,
            "edgeguard.rfkill.op": ev.op_name,
            "edgeguard.rfkill.soft": bool(ev.soft),
            "edgeguard.rfkill.hard": bool(ev.hard),
        }
