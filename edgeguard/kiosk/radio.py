"""Bluetooth radios (and any type in ``block_radios``) off on kiosks, and kept off.

At start (enforce mode) one ``CHANGE_ALL`` soft-blocks every Bluetooth radio and sets the
state new Bluetooth radios start in. The guard then reads ``/dev/rfkill`` on the event
loop: a Bluetooth radio that is added or changed to soft-unblocked (``rfkill unblock``,
a desktop applet, ``bluetoothctl power on``) is a ``radio``/``bluetooth-unblocked``
finding, and in enforce mode it is blocked again at once, audited. Our own block comes
back as a ``CHANGE`` with ``soft=1`` and is ignored, so there is no loop. The revert
happens for every unblock, including repeats the decision engine suppresses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

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
    Severity,
)
from edgeguard.kiosk.config import KioskConfig, RadioKind
from edgeguard.kiosk.evidence import RadioEvidence
from edgeguard.kiosk.rfkill import Op, RadioType, RfkillDevice, RfkillEvent

__all__ = ["FINDING_KIND", "SUBTYPES", "RadioGuard"]

FINDING_KIND = "radio"
#: ``<type>-radio``: a kept-off radio appeared unblocked; ``<type>-unblocked``: someone
#: unblocked one. Only the types the policy can keep off (Bluetooth, ``block_radios``).
_KEPT_OFF = ("bluetooth", *(kind.value for kind in RadioKind))
SUBTYPES = tuple(f"{name}-{what}" for name in _KEPT_OFF for what in ("radio", "unblocked"))


@dataclass(slots=True)
class RadioGuard:
    config: KioskConfig
    mode: Mode
    device: RfkillDevice
    audit: AuditSink
    clock: Clock
    submit: Callable[[Finding], Decision]
    events: int = 0
    reverted: int = 0
    errors: int = 0
    radios: dict[int, RfkillEvent] = field(default_factory=dict)

    @property
    def blocked_types(self) -> tuple[int, ...]:
        """rfkill types kept off: Bluetooth unless allowed, then ``block_radios``."""
        types = [] if self.config.bluetooth else [int(RadioType.BLUETOOTH)]
        types.extend(kind.rfkill_type for kind in self.config.block_radios)
        return tuple(dict.fromkeys(types))

    def start(self) -> int:
        """Open the device (its ADD events are our coldplug) and block all Bluetooth."""
        fd = self.device.open()
        self.block_all()
        return fd

    def reconfigure(self, config: KioskConfig, mode: Mode) -> None:
        self.config, self.mode = config, mode
        self.block_all()
        for event in list(self.radios.values()):
            self.handle(event)

    def block_all(self) -> None:
        if self.mode is not Mode.ENFORCE:
            return
        for radio_type in self.blocked_types:
            name = RadioType(radio_type).name.lower()
            record = AuditRecord(
                action="rfkill-block-all", message=f"{name} radios soft-blocked (kiosk policy)",
                category=("host",), event_type=("change",), mode=self.mode,
                fields={"edgeguard.rfkill.type": name, "edgeguard.rfkill.op": "change_all"})
            self._audited(record, functools.partial(self._block_all_type, radio_type))

    def _block_all_type(self, radio_type: int) -> ActionResult:
        self.device.block_all(RadioType(radio_type))
        return ActionResult(ActionKind.LOG, ok=True, detail=f"written to {self.device.path}")

    def on_readable(self) -> None:
        for event in self.device.read_events():
            self.handle(event)

    def handle(self, event: RfkillEvent) -> None:
        self.events += 1
        if event.op == Op.DEL:
            self.radios.pop(event.idx, None)
            return
        if event.op in (Op.ADD, Op.CHANGE):
            self.radios[event.idx] = event
        if event.type not in self.blocked_types or event.soft:
            return
        if event.op not in (Op.ADD, Op.CHANGE):
            return
        evidence = RadioEvidence(event)
        now = self.clock.now()
        name = event.type_name
        subtype = f"{name}-unblocked" if event.op == Op.CHANGE else f"{name}-radio"
        finding = Finding(
            kind=FINDING_KIND, subtype=subtype,
            message=f"{name} radio {event.idx} is soft-unblocked; the kiosk policy keeps "
                    f"{name} off", identifier=f"rfkill{event.idx}",
            severity=Severity.MODERATE, first_seen=now, last_seen=now, evidence=evidence)
        decision = self.submit(finding)
        if decision.mode is not Mode.ENFORCE:
            return
        record = AuditRecord(
            action="rfkill-unblock-reverted",
            message=f"{name} radio {event.idx} soft-blocked again",
            category=("host", "intrusion_detection"), event_type=("denied",),
            severity=decision.severity,
            rule_id=decision.rule_id, mode=decision.mode, fields=dict(evidence.ecs_fields()))
        if self._audited(record, lambda: self._write(lambda: self.device.block(
                event.idx, event.type))):
            self.reverted += 1

    def _write(self, write: Callable[[], None]) -> ActionResult:
        write()
        return ActionResult(ActionKind.LOG, ok=True, detail=f"written to {self.device.path}")

    def _audited(self, record: AuditRecord, act: Callable[[], ActionResult]) -> bool:
        try:
            result = audited(self.audit, record, act)
        except OSError:
            self.errors += 1
            return False
        if not result.ok:
            self.errors += 1
        return result.ok

    def counter_map(self) -> dict[str, int]:
        return {"rfkill_events": self.events, "rfkill_reverted": self.reverted,
                "rfkill_malformed": self.device.malformed, "rfkill_errors": self.errors,
                "rfkill_radios": len(self.radios)}
