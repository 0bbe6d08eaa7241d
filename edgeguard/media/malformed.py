"""A USB block device whose uevent the parser refused: still a device that was plugged in.

The parser (:mod:`edgeguard.media.uevent`) refuses a uevent with control characters,
over-long or non-text strings, a bad DEVPATH...; the node stays read-only as the udev
helper left it (fail closed), and the daemon never touches it (its name is not trusted
enough to open). What *can* be said about it is kept here: the fields the event carried,
each escaped (C0/C1 controls, DEL and backslash as ``\\xNN``/``\\\\``, cut to
:data:`MAX_FIELD`), so an audit record and a ``media list`` row exist for it and no
terminal or log viewer interprets what the device chose to call itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import AuditRecord, Decision, EventKind, Finding, Outcome, Scalar, Severity

__all__ = ["MAX_FIELD", "MalformedDevice", "escape", "malformed_device", "malformed_finding",
           "malformed_record"]

#: Characters kept of each field of a refused uevent (after escaping).
MAX_FIELD = 128

#: uevent key -> ECS field, for the fields worth recording about a refused device.
_FIELDS = {
    "DEVNAME": "volume.device_name",
    "DEVTYPE": "volume.device_type",
    "ID_VENDOR_ID": "volume.vendor_id",
    "ID_MODEL_ID": "volume.product_id",
    "ID_SERIAL_SHORT": "volume.serial_number",
    "ID_VENDOR": "volume.vendor_name",
    "ID_MODEL": "volume.product_name",
    "ID_FS_TYPE": "volume.file_system_type",
    "DEVPATH": "edgeguard.media.devpath",
}


def escape(value: object, limit: int = MAX_FIELD) -> str:
    """``value`` as text with every control character (C0, DEL, C1) and the backslash
    escaped, cut to ``limit`` characters (``…`` marks a cut)."""
    text = value if isinstance(value, str) else repr(value)
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    escaped = "".join(out)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class MalformedDevice:
    """What is known of a refused USB block device; every string escaped."""

    key: str  # the escaped DEVPATH: what a later remove event is matched by
    reason: str  # why the parser refused it
    fields: tuple[tuple[str, str], ...]  # (ECS field, escaped value)
    seen: float

    def ecs_fields(self) -> Mapping[str, Scalar]:
        out: dict[str, Scalar] = dict(self.fields)
        out.update({
            "volume.bus_type": "usb",
            "volume.removable": True,
            "volume.writable": False,
            "edgeguard.media.verdict": "malformed",
            "edgeguard.media.reason": (
                f"uevent refused ({self.reason}); left read-only as the udev rule set it"),
        })
        return out


def malformed_device(props: object, reason: str, now: float) -> MalformedDevice | None:
    """The refused event as a device, or None when it is not an add/change of a USB
    block device (garbage that names no device is only counted)."""
    if not isinstance(props, Mapping):
        return None
    if props.get("SUBSYSTEM") != "block" or props.get("ID_BUS") != "usb":
        return None
    if props.get("ACTION") not in ("add", "change"):
        return None
    fields = tuple((ecs, escape(props[key])) for key, ecs in _FIELDS.items()
                   if props.get(key) is not None)
    return MalformedDevice(escape(props.get("DEVPATH", "")), escape(reason), fields, now)


def malformed_finding(device: MalformedDevice) -> Finding:
    """The proposal to the decision engine (``usb``/``malformed``): rule id and mode."""
    return Finding(kind="usb", subtype="malformed", message=device.reason,
                   identifier=device.key, severity=Severity.MODERATE,
                   first_seen=device.seen, last_seen=device.seen)


def malformed_record(device: MalformedDevice, decision: Decision) -> AuditRecord:
    """``usb-malformed``: a device was plugged in whose uevent could not be parsed. The
    daemon did not act on it (outcome unknown: it does not open an untrusted name to read
    the flag back); the udev helper had set it read-only."""
    name = dict(device.fields).get("volume.device_name", device.key)
    return AuditRecord(
        action="usb-malformed",
        message=f"{name}: USB storage uevent refused ({device.reason}); left read-only",
        kind=EventKind.EVENT,
        category=("host", "configuration"),
        event_type=("info",),
        outcome=Outcome.UNKNOWN,
        severity=decision.severity,
        rule_id=decision.rule_id,
        mode=decision.mode,
        fields=device.ecs_fields(),
    )
