"""USB device authorisation: assess each device, authorise what the policy allows,
report and keep out the rest.

Fail closed in layers. The kernel holds every new device de-authorised
(``authorized_default`` 0 or 2 on the root hubs, set at start and by the shipped udev
rule), so nothing binds until this guard writes ``authorized=1``. Refusals are findings
(``usb-device``/<reason>) the policy decides about; its ``deauthorize`` action takes a
device out that *is* authorised (present before the guard started, or authorised by
someone else: an interface appearing under a refused device is reverted). Authorising is
lifting a restriction, so it happens in monitor mode too; refusing only in enforce mode.
Every step is an audit record opened as a failure (:func:`audited`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.actions.base import audited
from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.events import (
    ActionKind,
    ActionResult,
    AuditRecord,
    Decision,
    Finding,
    Mode,
    Scalar,
)
from edgeguard.kiosk.assess import REFUSING, Assessment, Reason, Verdict, assess
from edgeguard.kiosk.bootset import BootSet
from edgeguard.kiosk.config import AuthorizedDefault, Granularity, KioskConfig
from edgeguard.kiosk.evidence import UsbEvidence, device_row
from edgeguard.kiosk.sysfs import DeviceGone, UsbSysfs
from edgeguard.kiosk.usb import UsbDevice

__all__ = ["FINDING_KIND", "FLAGGED_SUBTYPE", "SUBTYPES", "DeauthorizeAction", "GuardCounters",
           "UsbGuard"]

FINDING_KIND = "usb-device"
#: Subtype of the finding for a late HID that was authorised (late_hid: flag); refusals
#: use the :class:`Reason` value, so rules can act on them separately.
FLAGGED_SUBTYPE = "hid-flagged"
#: A refused device is reported under its refusing reason, a late keyboard let in as flagged.
SUBTYPES = (FLAGGED_SUBTYPE, *(reason.value for reason in REFUSING))


@dataclass(slots=True)
class GuardCounters:
    events: int = 0
    authorized: int = 0
    refused: int = 0
    flagged: int = 0
    reverted: int = 0
    gone: int = 0
    malformed: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f"usb_{k}": getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class UsbGuard:
    config: KioskConfig
    mode: Mode
    sysfs: UsbSysfs
    audit: AuditSink
    clock: Clock
    submit: Callable[[Finding], Decision]
    state_dir: Path
    boot_id: str
    boot: BootSet | None = None
    counters: GuardCounters = field(default_factory=GuardCounters)
    last: dict[str, tuple[UsbDevice, Assessment]] = field(default_factory=dict)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Close the door (authorized_default) and record the boot set, at once."""
        if self.mode is Mode.ENFORCE:
            self._set_defaults()
        self.boot = BootSet.load_or_record(self.state_dir, self.boot_id, self._present())

    def coldplug(self) -> None:
        """Judge every present device (run once the pipeline has our actions)."""
        for dev in self._present():
            self.evaluate(dev)

    def reconfigure(self, config: KioskConfig, mode: Mode) -> None:
        self.config, self.mode = config, mode
        if mode is Mode.ENFORCE:
            self._set_defaults()
        self.coldplug()

    def _present(self) -> list[UsbDevice]:
        out = []
        for name in self.sysfs.device_names():
            try:
                out.append(self.sysfs.read(name))
            except OSError:
                self.counters.gone += 1
        return out

    def _set_defaults(self) -> None:
        value = self.config.authorized_default.sysfs_value
        if value is not None:
            self._record_default("authorized_default", value)
        if self.config.granularity is Granularity.INTERFACE:
            self._record_default("interface_authorized_default", "0")

    def _record_default(self, attr: str, value: str) -> None:
        def act() -> ActionResult:
            if attr == "authorized_default":
                changed = self.sysfs.set_authorized_default(value)
            else:
                changed = self.sysfs.set_interface_authorized_default(value)
            if not changed:
                return ActionResult(ActionKind.DEAUTHORIZE, ok=False, detail="no root hubs")
            return ActionResult(ActionKind.DEAUTHORIZE, ok=True, changed=any(changed.values()),
                                detail=f"{attr}={value} on {', '.join(sorted(changed))}")
        names = {AuthorizedDefault.NONE.sysfs_value: "none",
                 AuthorizedDefault.INTERNAL.sysfs_value: "internal"}
        record = AuditRecord(
            action="usb-authorized-default",
            message=f"new USB devices held until edgeguard decides ({attr}={value})",
            category=("configuration",), event_type=("change",), mode=self.mode,
            fields={"edgeguard.usb.attribute": attr,
                    "edgeguard.usb.authorized_default": names.get(value, value)})
        self._audited(record, act)

    # -- events ------------------------------------------------------------------------
    def on_uevent(self, action: str, sys_name: str, dev_type: str | None) -> None:
        """A udev event for subsystem ``usb``: new devices, and interfaces appearing."""
        self.counters.events += 1
        if action != "add" or sys_name.startswith("usb"):
            if action == "remove":
                self.last.pop(sys_name, None)
            return
        if dev_type == "usb_interface":
            parent = sys_name.split(":", 1)[0]
            prior = self.last.get(parent)
            if prior is not None and prior[1].verdict is Verdict.DENY:
                self.counters.reverted += 1  # someone authorised a refused device
                sys_name = parent
            else:
                return
        elif dev_type not in (None, "usb_device"):
            return
        try:
            dev = self.sysfs.read(sys_name)
        except (OSError, ValueError):
            self.counters.gone += 1
            return
        self.evaluate(dev)

    def evaluate(self, dev: UsbDevice) -> Assessment:
        verdict = assess(dev, self.config, self.boot)
        self.last[dev.bus_path] = (dev, verdict)
        if dev.error is not None:
            self.counters.malformed += 1
        evidence = UsbEvidence(dev, verdict)
        if verdict.verdict is Verdict.ALLOW:
            self.counters.authorized += 1
            self._authorize(dev, verdict, evidence)
            if verdict.flagged:
                self.counters.flagged += 1
        else:
            self.counters.refused += 1
        reason = verdict.finding_reason
        if reason is not None:
            self._report(dev, verdict, evidence, reason)
        return verdict

    def _authorize(self, dev: UsbDevice, verdict: Assessment, evidence: UsbEvidence) -> None:
        boot = verdict.reason is Reason.BOOT_DEVICE

        def act() -> ActionResult:
            changed = self.sysfs.set_authorized(dev.bus_path, True)
            for iface in self.sysfs.interfaces(dev.bus_path):
                if iface.authorized is False and iface.usb_class not in verdict.refused:
                    changed = self.sysfs.set_interface_authorized(iface.name, True) or changed
            return ActionResult(ActionKind.LOG, ok=True, changed=changed,
                                detail="authorized=1")
        record = AuditRecord(
            action="usb-boot-device" if boot else "usb-authorized",
            message=f"USB {dev.identity} at {dev.bus_path} authorised: {verdict.reason.value}",
            category=("host",), event_type=("allowed",), mode=self.mode,
            fields=dict(evidence.ecs_fields()))
        self._audited(record, act)

    def _report(self, dev: UsbDevice, verdict: Assessment, evidence: UsbEvidence,
                reason: Reason) -> None:
        flagged = verdict.verdict is Verdict.ALLOW and not verdict.refused_interfaces
        classes = ", ".join(c.value for c in (verdict.refused or dev.classes))
        message = (f"USB {dev.identity} at {dev.bus_path}: HID appeared after boot "
                   f"(keystroke injection?); authorised and flagged" if flagged else
                   f"USB {dev.identity} at {dev.bus_path} refused: {reason.value} ({classes})")
        now = self.clock.now()
        finding = Finding(
            kind=FINDING_KIND, subtype=FLAGGED_SUBTYPE if flagged else reason.value,
            message=message,
            identifier=f"{dev.bus_path}/{dev.identity}/{dev.serial or ''}",
            severity=reason.severity, first_seen=now, last_seen=now,
            evidence=evidence)
        # The pipeline de-authorises (DeauthorizeAction), on a repeat too: the catalogue
        # marks refusals "reapply on repeat".
        self.submit(finding)

    def _audited(self, record: AuditRecord, act: Callable[[], ActionResult]) -> None:
        try:
            result = audited(self.audit, record, act)
        except OSError:
            self.counters.errors += 1
            return
        if not result.ok:
            self.counters.errors += 1

    def rows(self) -> list[dict[str, Scalar]]:
        """The last verdict on every device seen, for ``kiosk.devices``."""
        return [device_row(*self.last[k]) for k in sorted(self.last)]

    def counter_map(self) -> Mapping[str, int]:
        return self.counters.as_dict()


def deauthorize(sysfs: UsbSysfs, evidence: UsbEvidence) -> ActionResult:
    """Take the refused part out: the device, or (granularity interface) its refused
    interfaces. Already out: ok, unchanged. Gone: ok, nothing left to refuse."""
    dev, verdict = evidence.device, evidence.assessment
    try:
        if verdict.verdict is Verdict.ALLOW:
            changed = False
            for iface in sysfs.interfaces(dev.bus_path):
                if iface.usb_class in verdict.refused:
                    if iface.authorized is None:
                        changed = sysfs.set_authorized(dev.bus_path, False) or changed
                        return ActionResult(ActionKind.DEAUTHORIZE, ok=True, changed=changed,
                                            detail="no interface authorisation: device "
                                                   "de-authorised")
                    changed = sysfs.set_interface_authorized(iface.name, False) or changed
            return ActionResult(ActionKind.DEAUTHORIZE, ok=True, changed=changed,
                                detail="refused interfaces de-authorised")
        changed = sysfs.set_authorized(dev.bus_path, False)
    except DeviceGone:
        return ActionResult(ActionKind.DEAUTHORIZE, ok=True, changed=False,
                            detail="device gone")
    return ActionResult(ActionKind.DEAUTHORIZE, ok=True, changed=changed,
                        detail="authorized=0" if changed else "already de-authorised")


@dataclass(slots=True)
class DeauthorizeAction:
    """The pipeline's ``deauthorize`` action for kiosk findings."""

    sysfs: UsbSysfs
    kind: ActionKind = ActionKind.DEAUTHORIZE

    def apply(self, decision: Decision) -> ActionResult:
        evidence = decision.finding.evidence
        if not isinstance(evidence, UsbEvidence):
            return ActionResult(self.kind, ok=False,
                                detail=f"not a kiosk USB finding ({decision.finding.kind})")
        if decision.finding.subtype == FLAGGED_SUBTYPE:
            return ActionResult(self.kind, ok=False,
                                detail="late_hid is 'flag': refusing to de-authorise a "
                                       "flagged HID; set late_hid: block instead")
        return deauthorize(self.sysfs, evidence)
