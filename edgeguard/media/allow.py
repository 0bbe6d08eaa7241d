"""Temporary write allows (``edgeguard media allow``), persisted across daemon restarts.

An allow names a device by its identity (vendor id, product id, serial), not by its
``/dev`` name, so it follows the stick when it is re-plugged and never lands on a
different stick that happens to get the same name. It carries who granted it, why and
until when (wall-clock epoch, so it survives restarts), and lapses by itself: expired
entries are never returned and are pruned on the next write.

The file is replaced atomically (write a temporary file, fsync, rename, fsync the
directory), so a crash leaves either the old or the new set, never a torn file. A file
that does not parse is moved aside and treated as empty: fail closed, no allow.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeguard.clock import Clock
from edgeguard.ecs import iso_timestamp

__all__ = ["AllowError", "AllowStore", "TemporaryAllow"]

_FORMAT = 1


class AllowError(ValueError):
    """A grant that cannot be made (no serial, bad duration...)."""


@dataclass(frozen=True, slots=True)
class TemporaryAllow:
    vendor_id: str
    product_id: str
    serial: str
    device: str  # the /dev name at grant time, for people reading the list
    granted_at: float
    until: float
    by: str  # who granted it (user name of the control-socket peer)
    reason: str

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.vendor_id, self.product_id, self.serial)

    @property
    def until_text(self) -> str:
        return iso_timestamp(self.until)


class AllowStore:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.corrupt = 0  # files found unreadable and moved aside
        self._allows: dict[tuple[str, str, str], TemporaryAllow] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            data = json.loads(raw)
            if data.get("format") != _FORMAT:
                raise ValueError("unknown format")
            for item in data["allows"]:
                allow = TemporaryAllow(**item)
                if not all(isinstance(v, str) for v in allow.identity):
                    raise ValueError("bad identity")
                float(allow.until)
                self._allows[allow.identity] = allow
        except (ValueError, TypeError, KeyError, AttributeError):
            self.corrupt += 1
            self._allows.clear()
            os.replace(self.path, self.path.with_suffix(self.path.suffix + ".corrupt"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        body = json.dumps({"format": _FORMAT,
                           "allows": [asdict(a) for a in self._allows.values()]},
                          indent=1, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def grant(self, identity: tuple[str | None, str | None, str | None], device: str,
              seconds: float, by: str, reason: str) -> TemporaryAllow:
        vendor_id, product_id, serial = identity
        if not (vendor_id and product_id):
            raise AllowError(f"{device} has no USB vendor/product id")
        if not serial:
            raise AllowError(f"{device} reports no serial number; an allow would cover every "
                             "stick of that model")
        if seconds <= 0:
            raise AllowError("duration must be positive")
        if not reason.strip():
            raise AllowError("a reason is required")
        now = self.clock.now()
        allow = TemporaryAllow(vendor_id, product_id, serial, device, now, now + seconds,
                               by, reason.strip())
        self.prune()
        self._allows[allow.identity] = allow
        self._save()
        return allow

    def active(self, identity: tuple[str, str, str] | None) -> TemporaryAllow | None:
        if identity is None:
            return None
        allow = self._allows.get(identity)
        if allow is None or allow.until <= self.clock.now():
            return None
        return allow

    def prune(self) -> list[TemporaryAllow]:
        """Forget expired allows (persisting the change); return them."""
        now = self.clock.now()
        gone = [a for a in self._allows.values() if a.until <= now]
        for allow in gone:
            del self._allows[allow.identity]
        if gone:
            self._save()
        return gone

    def next_expiry(self) -> float | None:
        return min((a.until for a in self._allows.values()), default=None)

    def all(self) -> list[TemporaryAllow]:
        now = self.clock.now()
        return [a for a in self._allows.values() if a.until > now]
