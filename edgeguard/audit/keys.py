"""Forward-secure checkpoint keys: K(e+1) = HMAC-SHA256(K(e), "next").

At enrolment (``edgeguard audit init --export-key FILE``) a random K0 is written once to
the export file, which the trust keeps off this host, and to the daemon's key file. Each
checkpoint is MAC'd with the current key, then the key is evolved and the old one is
overwritten on disk and in memory. An intruder who reads the key file at epoch E can
seal checkpoints for epochs >= E only: every checkpoint before the intrusion stays
provable (unlike a key that is merely kept secret).

Limits, stated plainly: Python cannot promise that no copy of a ``bytes`` object lingers
in freed memory (we keep keys in a ``bytearray`` and zero it), and overwriting a file on
a journaling filesystem or an SSD may leave the old blocks readable by forensic tools.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.chain import canonical
from edgeguard.fsutil import atomic_write, fsync_directory, unsafe_reason

__all__ = [
    "AuditKeyError",
    "ExportedKey",
    "KeyStore",
    "enrol",
    "evolve",
    "key_id_of",
    "mac",
    "read_export",
]

_NEXT = b"next"
_KEY_BYTES = 32


class AuditKeyError(Exception):
    """A key file that is missing, malformed or would be overwritten."""


def evolve(key: bytes | bytearray) -> bytearray:
    return bytearray(hmac.new(bytes(key), _NEXT, hashlib.sha256).digest())


def key_id_of(k0: bytes | bytearray) -> str:
    """Names the enrolment (not secret): lets a verifier tell a foreign key from a forgery."""
    return hashlib.sha256(b"edgeguard-audit-key-id\n" + bytes(k0)).hexdigest()[:16]


def mac(key: bytes | bytearray, fields: dict[str, Any]) -> str:
    return hmac.new(bytes(key), canonical(fields), hashlib.sha256).hexdigest()


def _encode(key_id: str, epoch: int, key: bytes | bytearray, purpose: str) -> bytes:
    return orjson.dumps({"key_id": key_id, "epoch": epoch, "key": bytes(key).hex(),
                         "purpose": purpose}) + b"\n"


def _decode(data: bytes, where: Path) -> tuple[str, int, bytearray]:
    try:
        doc = orjson.loads(data)
        key = bytearray(bytes.fromhex(doc["key"]))
        epoch, key_id = doc["epoch"], doc["key_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise AuditKeyError(f"{where}: not an edgeguard audit key file") from None
    if len(key) != _KEY_BYTES or not isinstance(epoch, int) or epoch < 0 \
            or not isinstance(key_id, str):
        raise AuditKeyError(f"{where}: not an edgeguard audit key file")
    return key_id, epoch, key


@dataclass(frozen=True, slots=True)
class ExportedKey:
    """K0 as the off-host verifier holds it."""

    key_id: str
    k0: bytes


def read_export(path: Path) -> ExportedKey:
    key_id, epoch, key = _decode(path.read_bytes(), path)
    if epoch != 0:
        raise AuditKeyError(f"{path}: holds the key of epoch {epoch}, not the exported K0")
    if key_id_of(key) != key_id:
        raise AuditKeyError(f"{path}: key id does not match the key")
    return ExportedKey(key_id, bytes(key))


def enrol(key_file: Path, export_file: Path) -> str:
    """Create K0, export it (once) and install it as the daemon's key at epoch 0."""
    if key_file.exists():
        raise AuditKeyError(f"{key_file} exists: this host is already enrolled (K0 is gone; "
                            "remove the key file to start a new enrolment and a new chain key)")
    k0 = bytearray(os.urandom(_KEY_BYTES))
    key_id = key_id_of(k0)
    fd = os.open(export_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, _encode(key_id, 0, k0, "edgeguard audit K0: keep off-host, verifier only"))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(export_file.resolve().parent)
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(key_file, _encode(key_id, 0, k0, "edgeguard audit evolving key"))
    k0[:] = bytes(len(k0))
    return key_id


class KeyStore:
    """The daemon's evolving key: read once, used for one checkpoint, then evolved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        problem = unsafe_reason(path)
        if problem is not None:
            raise AuditKeyError(f"{path}: refused: {problem}")
        self.key_id, self.epoch, self._key = _decode(path.read_bytes(), path)

    def seal(self, fields: dict[str, Any]) -> tuple[int, str]:
        """MAC ``fields`` with K(epoch), then move to K(epoch+1) and erase K(epoch).

        The new key is durable *before* the MAC leaves this function, so a crash can
        skip an epoch (the verifier allows gaps) but never reuse a key. The old file is
        kept open across the atomic replace and overwritten with zeros afterwards, so
        the file name always holds a usable key and the old key's blocks are wiped.
        """
        epoch = self.epoch
        signed = dict(fields, epoch=epoch, key_id=self.key_id)
        tag = mac(self._key, signed)
        nxt = evolve(self._key)
        old = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            atomic_write(self.path, _encode(self.key_id, epoch + 1, nxt,
                                            "edgeguard audit evolving key"))
            os.pwrite(old, bytes(os.fstat(old).st_size), 0)
            os.fdatasync(old)
        finally:
            os.close(old)
        self._key[:] = bytes(len(self._key))
        self._key, self.epoch = nxt, epoch + 1
        return epoch, tag

    def close(self) -> None:
        self._key[:] = bytes(len(self._key))
