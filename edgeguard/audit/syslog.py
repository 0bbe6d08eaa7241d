"""RFC 5424 syslog over TCP (RFC 6587 octet counting) and TLS (RFC 5425).

Each audit record becomes one message whose MSG is the record's exact JSON line (so the
receiver's file can be checked with ``edgeguard audit verify --against``), and whose
STRUCTURED-DATA carries the chain id, sequence and hash: a record re-sent after a
reconnect is recognisable as a duplicate by ``chain`` + ``seq``.

TCP says nothing about what the receiving *program* has read. The shipper therefore
moves its cursor only when the kernel reports every byte acknowledged by the peer
(``SIOCOUTQ`` = 0) and, after a reconnect, re-sends a configurable number of records
before the cursor (see :mod:`edgeguard.audit.shipper`).
"""

from __future__ import annotations

import contextlib
import fcntl
import select
import socket
import ssl
import struct
import termios
from typing import Any

from edgeguard.audit.chain import get_path

__all__ = ["SD_ID", "SyslogTransport", "format_message", "syslog_severity", "tls_context"]

#: The SD-ID of our STRUCTURED-DATA element; 32473 is the private enterprise number
#: RFC 5612 reserves for documentation (a trust may substitute its own).
SD_ID = "edgeguard@32473"
_FACILITY = 13  # "log audit"
_SIOCOUTQ = 0x5411  # TIOCOUTQ: bytes not yet acknowledged by the peer (TCP)


def syslog_severity(record: dict[str, Any]) -> int:
    kind = get_path(record, "event.kind")
    level = get_path(record, "event.severity")
    if kind == "pipeline_error":
        return 3  # err
    if level == 3:
        return 2  # crit
    if kind == "alert":
        return 4  # warning
    return 6  # info


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(value: object, limit: int) -> str:
    text = "".join(c for c in str(value) if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def format_message(line: bytes, record: dict[str, Any]) -> bytes:
    """One RFC 5424 message (without framing) for one audit record line."""
    pri = _FACILITY * 8 + syslog_severity(record)
    stamp = _header_field(get_path(record, "@timestamp"), 64)
    host = _header_field(get_path(record, "host.name"), 255)
    msgid = _header_field(get_path(record, "event.action"), 32)
    sd = (f'[{SD_ID} chain="{_sd_value(get_path(record, "edgeguard.chain_id"))}" '
          f'seq="{_sd_value(get_path(record, "event.sequence"))}" '
          f'hash="{_sd_value(get_path(record, "event.hash"))}"]')
    head = f"<{pri}>1 {stamp} {host} edgeguard - {msgid} {sd} "
    return head.encode("utf-8") + line


def tls_context(ca_file: str | None, cert_file: str | None,
                key_file: str | None) -> ssl.SSLContext:
    """TLS 1.2 or later; the receiver's certificate must chain to ``ca_file`` (unset: the
    system's CAs) and match the server name; an optional client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class SyslogTransport:
    """A TCP or TLS connection to a syslog receiver, octet-counting framed."""

    def __init__(self, host: str, port: int, *, tls: bool, ca_file: str | None = None,
                 server_name: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float = 10.0) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.timeout = timeout
        self._context = tls_context(ca_file, cert_file, key_file) if tls else None
        self.server_name = server_name or host
        self._sock: socket.socket | None = None
        self.name = self.transport_name(tls=tls)

    @staticmethod
    def transport_name(*, tls: bool) -> str:
        """The destination's name (and its cursor file's): ``syslog-tls`` or ``syslog-tcp``."""
        return f"syslog-{'tls' if tls else 'tcp'}"

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock = raw
        if self._context is not None:
            sock = self._context.wrap_socket(raw, server_hostname=self.server_name)
        self._sock = sock

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def send(self, batch: list[tuple[int, bytes, dict[str, Any]]]) -> None:
        assert self._sock is not None
        frames = []
        for _seq, line, record in batch:
            msg = format_message(line, record)
            frames.append(str(len(msg)).encode("ascii") + b" " + msg)
        self._sock.sendall(b"".join(frames))

    def _ioctl_int(self, request: int) -> int:
        assert self._sock is not None
        buf = fcntl.ioctl(self._sock.fileno(), request, struct.pack("i", 0))
        value: int = struct.unpack("i", buf)[0]
        return value

    def delivered(self) -> bool:
        """Every byte sent has been acknowledged by the receiver's TCP."""
        if not self.healthy():
            return False
        try:
            return self._ioctl_int(_SIOCOUTQ) == 0
        except OSError:
            return False

    def healthy(self) -> bool:
        """False once the receiver closed or reset the connection. Checked without
        reading (the TLS layer owns the stream): readable with nothing to read is EOF."""
        if self._sock is None:
            return False
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLRDHUP)
        events = poller.poll(0)
        if not events:
            return True
        mask = events[0][1]
        if mask & (select.POLLERR | select.POLLHUP | select.POLLRDHUP | select.POLLNVAL):
            return False
        try:
            return self._ioctl_int(termios.FIONREAD) > 0
        except OSError:
            return False

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                if isinstance(sock, ssl.SSLSocket):  # close_notify, so the peer sees a clean end
                    sock.settimeout(1.0)
                    sock.unwrap()
            with contextlib.suppress(OSError):
                sock.close()

