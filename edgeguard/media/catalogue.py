"""The catalogue of hardware-encrypted USB models (``hardware/encrypted-usb.yaml``).

A trust device whose vid:pid is listed here encrypts in hardware (keypad or host
unlock), so it may be written without a LUKS/BitLocker container. The catalogue is a
trust decision: an entry must name where its id comes from, and a catalogue that does
not load is empty (fail closed: nothing is treated as hardware-encrypted).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["CatalogueError", "EncryptedModel", "HardwareCatalogue", "shipped_catalogue_path"]


class CatalogueError(ValueError):
    """The catalogue file is unreadable or an entry is malformed."""


@dataclass(frozen=True, slots=True)
class EncryptedModel:
    vendor_id: str
    product_id: str
    vendor: str
    model: str
    source: str


def shipped_catalogue_path() -> Path:
    """The shipped catalogue (``hardware/encrypted-usb.yaml``, packaged with edgeguard)."""
    return Path(str(importlib.resources.files("edgeguard") / "encrypted-usb.yaml"))


def _usb_id(value: object, where: str) -> str:
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if len(text) != 4 or any(c not in "0123456789abcdef" for c in text):
        raise CatalogueError(f"{where}: expected four hex digits, got {value!r}")
    return text


class HardwareCatalogue:
    def __init__(self, models: Iterable[EncryptedModel] = ()) -> None:
        self._by_id = {(m.vendor_id, m.product_id): m for m in models}

    def __len__(self) -> int:
        return len(self._by_id)

    def lookup(self, vendor_id: str | None, product_id: str | None) -> EncryptedModel | None:
        if vendor_id is None or product_id is None:
            return None
        return self._by_id.get((vendor_id, product_id))

    @classmethod
    def load(cls, path: Path) -> HardwareCatalogue:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CatalogueError(f"{path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise CatalogueError(f"{path}: expected a mapping with a 'models' list")
        models = []
        for index, entry in enumerate(data["models"]):
            where = f"{path}: models[{index}]"
            if not isinstance(entry, dict):
                raise CatalogueError(f"{where}: expected a mapping")
            usb = str(entry.get("usb_id", ""))
            vid, _, pid = usb.partition(":")
            for key in ("vendor", "model", "source"):
                if not isinstance(entry.get(key), str) or not entry[key].strip():
                    raise CatalogueError(f"{where}: {key!r} must be non-empty text")
            models.append(EncryptedModel(
                vendor_id=_usb_id(vid, where), product_id=_usb_id(pid, where),
                vendor=entry["vendor"], model=entry["model"], source=entry["source"]))
        return cls(models)
