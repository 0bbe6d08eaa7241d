"""Turn a plugged device into policy: a trust-register drop-in (``media register``) or an
exemption udev rule (``media exempt``), without hand-written YAML.

Pure functions from a parsed :class:`BlockDevice` to text, so the CLI, the tests and a
kiosk's "register what is plugged in now" share them. Values are checked before they
are written: a serial or id that cannot be quoted safely in YAML or in a udev rule is
refused, not escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgeguard.media.uevent import BlockDevice

__all__ = ["RegisterError", "Registration", "drop_in_name", "exempt_rule", "trust_entries_yaml",
           "trust_entry_yaml"]

#: Register ids: IT-0043, kiosk-7.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: What may go between double quotes in YAML and in a udev match without escaping.
_SAFE = re.compile(r"[A-Za-z0-9 ._:+/@-]{1,128}")
#: A port (ID_PATH): also one word, as rule 61 hands it to test(1) unquoted.
_PORT = re.compile(r"[A-Za-z0-9._:+/@-]{1,128}")


class RegisterError(ValueError):
    """The device cannot be registered (no identity, unsafe characters, bad id)."""


@dataclass(frozen=True, slots=True)
class Registration:
    device_id: str
    owner: str | None = None


def _safe(what: str, value: str | None) -> str:
    if value is None:
        raise RegisterError(f"the device reports no {what}")
    if not _SAFE.fullmatch(value):
        raise RegisterError(f"{what} {value!r} has characters edgeguard will not write")
    return value


def drop_in_name(device_id: str) -> str:
    if not _ID.fullmatch(device_id):
        raise RegisterError(f"--id {device_id!r}: letters, digits, '.', '_', '-' only")
    return f"50-media-{device_id}.yaml"


def _entry(disk: BlockDevice, reg: Registration) -> list[str]:
    drop_in_name(reg.device_id)
    lines = [
        f"    - id: \"{reg.device_id}\"  # {disk.devnode}",
        f"      vendor_id: \"{_safe('vendor id', disk.vendor_id)}\"",
        f"      product_id: \"{_safe('product id', disk.product_id)}\"",
        f"      serial: \"{_safe('serial', disk.serial)}\"",
    ]
    if disk.size is not None:
        lines.append(f"      size: {disk.size}B")
    parts = [p for p in (disk.vendor, disk.model) if p]
    if reg.owner:
        parts.append(f"owner {reg.owner}")
    if parts:
        text = " ".join(parts)
        if not text.isprintable() or len(text) > 256:
            raise RegisterError("--owner: printable text, at most 256 characters")
        lines.append(f"      description: {json.dumps(text)}")  # JSON strings are YAML
    return lines


def trust_entry_yaml(disk: BlockDevice, reg: Registration) -> str:
    """A policy drop-in adding ``disk`` to ``media.trusted_devices`` (merged by id)."""
    return trust_entries_yaml([(disk, reg)], "edgeguard media register")


def trust_entries_yaml(entries: Sequence[tuple[BlockDevice, Registration]],
                       written_by: str) -> str:
    """One drop-in registering several devices (``media generate``)."""
    lines = [f"# written by `{written_by}`", "media:", "  trusted_devices:"]
    for disk, reg in entries:
        lines += _entry(disk, reg)
    return "\n".join(lines) + "\n"


def exempt_rule(disk: BlockDevice, reason: str) -> str:
    """The udev line exempting ``disk`` on its port (ID_PATH) with its partition table
    (ID_PART_TABLE_UUID): a clone on another port, or another stick on this port, is
    not exempt. It records the port (``EDGEGUARD_MEDIA_EXEMPT_PORT``); rule 61 and the
    daemon honour the exemption only where that equals the device's own ID_PATH."""
    path = _safe("ID_PATH (physical port)", disk.id_path)
    if not _PORT.fullmatch(path):
        raise RegisterError(f"ID_PATH {path!r} has characters edgeguard will not write")
    ptuuid = _safe("partition-table UUID", disk.part_table_uuid)
    why = _safe("reason", reason)
    return (f"# edgeguard media exempt {disk.devnode}: {why}\n"
            f"ENV{{ID_PATH}}==\"{path}\", ENV{{ID_PART_TABLE_UUID}}==\"{ptuuid}\", "
            f"ENV{{EDGEGUARD_MEDIA_EXEMPT_PORT}}=\"{path}\"\n")
