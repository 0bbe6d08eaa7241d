"""Forward-secure checkpoint keys: K(e+1) = HMAC-SHA256(K(e), "next").

At enrolment (``edgeguard audit init --export-key FILE``) a random K0 is written once to
the export file, which the trust keeps off this host, and to the daemon's key file. Each
checkpoint is MAC'd with the current key, then the key is evolved and the old one is
overwritten in place on disk (same file, same bytes, fdatasync) and in memory. An
intruder who reads the key file at epoch E can seal checkpoints for epochs >= E only:
every checkpoint before the intrusion stays provable (unlike a key merely kept secret).

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
    "key_file_bytes",
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
    atomic_write(key_file, key_file_bytes(key_id, 0, k0))
    k0[:] = bytes(len(k0))
    return key_id


class KeyStore:
    """The daemon's evolving key: read once, used for one checkpoint, then evolved.

    The key file holds two fixed-size slots (:data:`SLOT_BYTES` each, a padded JSON line
    with a check value). Evolving writes K(e+1) into the free slot and syncs, then
    overwrites the slot of K(e) in place with blanks and syncs: the same inode and blocks,
    no temporary file, so no copy of an earlier key is left in the file or the directory.
    A crash between the two steps leaves both keys; the next open keeps the newer one and
    erases the older. A torn slot fails its check value and is ignored. A key file from
    before the slots (one JSON line) is read as slot 0 and converted by the first seal.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        problem = unsafe_reason(path)
        if problem is not None:
            raise AuditKeyError(f"{path}: refused: {problem}")
        slots = _read_slots(path.read_bytes(), path)
        if not slots:
            raise AuditKeyError(f"{path}: not an edgeguard audit key file")
        self._slot, (self.key_id, self.epoch, self._key) = max(
            slots.items(), key=lambda item: item[1][1])
        for index, (_id, _epoch, other) in slots.items():
            if index != self._slot:
                other[:] = bytes(len(other))
        if len(slots) > 1:  # a crash between writing the new key and erasing the old
            self._erase_others()

    def _erase_others(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            for index in range(_slot_count(fd)):
                if index != self._slot:
                    os.pwrite(fd, _BLANK_SLOT, index * SLOT_BYTES)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def seal(self, fields: dict[str, Any]) -> tuple[int, str]:
        """MAC ``fields`` with K(epoch), then move to K(epoch+1) and erase K(epoch).

        The new key is durable *before* the MAC leaves this function, so a crash can
        skip one epoch (the next checkpoint says the writer restarted) but never reuse a
        key.
        """
        epoch = self.epoch
        signed = dict(fields, epoch=epoch, key_id=self.key_id)
        tag = mac(self._key, signed)
        nxt = evolve(self._key)
        target = 1 - self._slot
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.pwrite(fd, _slot_line(self.key_id, epoch + 1, nxt), target * SLOT_BYTES)
            os.fdatasync(fd)
            os.pwrite(fd, _BLANK_SLOT, self._slot * SLOT_BYTES)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self._key[:] = bytes(len(self._key))
        self._key, self.epoch, self._slot = nxt, epoch + 1, target
        return epoch, tag

    def close(self) -> None:
        self._key[:] = bytes(len(self._key))


SLOT_BYTES = 256
_BLANK_SLOT = b" " * (SLOT_BYTES - 1) + b"\n"


def _check(key_id: str, epoch: int, key: bytes | bytearray) -> str:
    return hashlib.sha256(b"edgeguard-audit-slot\n%s\n%d\n%s" % (
        key_id.encode(), epoch, bytes(key))).hexdigest()[:16]


def _slot_line(key_id: str, epoch: int, key: bytes | bytearray) -> bytes:
    body = orjson.dumps({"key_id": key_id, "epoch": epoch, "key": bytes(key).hex(),
                         "check": _check(key_id, epoch, key)})
    return body.ljust(SLOT_BYTES - 1) + b"\n"


def key_file_bytes(key_id: str, epoch: int, key: bytes | bytearray) -> bytes:
    """A new key file: the key in slot 0, slot 1 free."""
    return _slot_line(key_id, epoch, key) + _BLANK_SLOT


def _slot_count(fd: int) -> int:
    return max(2, -(-os.fstat(fd).st_size // SLOT_BYTES))


def _read_slots(data: bytes, where: Path) -> dict[int, tuple[str, int, bytearray]]:
    """The valid keys in the file by slot (a torn or blank slot holds none)."""
    if len(data) < SLOT_BYTES:  # a key file from before the slots: one JSON line
        return {0: _decode(data, where)}
    out: dict[int, tuple[str, int, bytearray]] = {}
    for index in range(-(-len(data) // SLOT_BYTES)):
        chunk = data[index * SLOT_BYTES:(index + 1) * SLOT_BYTES].strip()
        if not chunk:
            continue
        try:
            key_id, epoch, key = _decode(chunk, where)
            check = orjson.loads(chunk).get("check")
        except (AuditKeyError, AttributeError):
            continue
        if check == _check(key_id, epoch, key):
            out[index] = (key_id, epoch, key)
    return out
