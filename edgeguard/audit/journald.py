"""journald's native protocol: one datagram of ``FIELD=value`` lines per record.

ECS names are flattened to journald field names (``event.action`` -> ``EVENT_ACTION``,
``source.ip`` -> ``SOURCE_IP``, ``@timestamp`` -> ``TIMESTAMP``); ``MESSAGE`` is the
record's message, ``PRIORITY`` its syslog severity, ``SYSLOG_IDENTIFIER=edgeguard``, and
``EDGEGUARD_RECORD`` the exact JSON line (so nothing is lost in the flattening). Values
with a newline use the protocol's length-prefixed form; a datagram too large for the
socket is passed as a sealed memfd, as sd_journal_send() does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import struct
from typing import Any

from edgeguard.audit.syslog import syslog_severity
from edgeguard.ecs import flatten

__all__ = ["JournaldTransport", "journal_fields", "serialize"]

_BAD = re.compile(r"[^A-Z0-9_]")
_SEALS = 0x0001 | 0x0002 | 0x0004 | 0x0008  # F_SEAL_SEAL | SHRINK | GROW | WRITE
_F_ADD_SEALS = 1033


def _name(dotted: str) -> str:
    name = _BAD.sub("_", dotted.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F_" + name
    return name[:64]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def journal_fields(line: bytes, record: dict[str, Any]) -> list[tuple[str, bytes]]:
    fields: list[tuple[str, bytes]] = [
        ("MESSAGE", str(record.get("message", "")).encode("utf-8")),
        ("PRIORITY", str(syslog_severity(record)).encode("ascii")),
        ("SYSLOG_IDENTIFIER", b"edgeguard"),
        ("EDGEGUARD_RECORD", line),
    ]
    for key, value in flatten(record).items():
        if key == "message":
            continue
        fields.append((_name(key), _text(value).encode("utf-8")))
    return fields


def serialize(fields: list[tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        key = name.encode("ascii")
        if b"\n" in value:
            out += key + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += key + b"=" + value + b"\n"
    return bytes(out)


class JournaldTransport:
    name = "journald"

    def __init__(self, path: str = "/run/systemd/journal/socket") -> None:
        self.path = path
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def send(self, batch: list[tuple[int, bytes, dict[str, Any]]]) -> None:
        assert self._sock is not None
        for _seq, line, record in batch:
            data = serialize(journal_fields(line, record))
            try:
                self._sock.send(data)
            except OSError as exc:
                if exc.errno not in (90, 105):  # EMSGSIZE, ENOBUFS: too big for a datagram
                    raise
                self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        assert self._sock is not None
        fd = os.memfd_create("edgeguard-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
        finally:
            os.close(fd)

    def delivered(self) -> bool:
        return True  # a local datagram socket: accepted means queued to journald

    def healthy(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
