"""RELP (rsyslog's Reliable Event Logging Protocol) client: acknowledged delivery.

Plain TCP syslog cannot tell what the receiving *program* took (the shipper infers
delivery from the kernel's ACKs and re-sends a window after a reconnect). RELP answers
every message: the receiver replies ``rsp 200`` once it has taken the message, so the
cursor moves on the receiver's word and a reconnect re-sends only what was not
answered. The protocol, as librelp speaks it (rsyslog's imrelp/omrelp)::

    frame   = TXNR SP COMMAND SP DATALEN [SP DATA] LF
    client  1 open 85 relp_version=0\\nrelp_software=edgeguard\\ncommands=syslog
    server  1 rsp 92 200 OK\\nrelp_version=0\\n...
    client  2 syslog 312 <109>1 2026-... {"@timestamp":...}
    server  2 rsp 6 200 OK
    client  N close 0            server  N rsp 0   (and 0 serverclose 0 when it quits)

Each message is the same RFC 5424 text the TCP transport sends
(:func:`edgeguard.audit.syslog.format_message`), so a receiver's file is the JSON lines
again. TLS is plain TLS around the same frames (rsyslog ``imrelp tls="on"``).
syslog-ng (Debian's syslog-ng-core) has no RELP; rsyslog-relp provides it for rsyslog.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import time
from collections import OrderedDict
from typing import Any

from edgeguard.audit.shipstate import ProtocolError
from edgeguard.audit.syslog import format_message, tls_context

__all__ = ["RELP_WINDOW", "RelpTransport", "encode_frame", "parse_frames"]

#: Messages sent and not yet answered, at most (librelp's default window is 128).
RELP_WINDOW = 128
#: Largest transaction number before it wraps to 1 (RELP's nine digits).
_TXNR_MAX = 999_999_999
_OFFER = b"relp_version=0\nrelp_software=edgeguard\ncommands=syslog"


def encode_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    head = f"{txnr} {command} {len(data)}".encode("ascii")
    return head + (b" " + data if data else b"") + b"\n"


_HEAD = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])")
_HEAD_MAX = 64  # bytes: a header not complete by then is not a header


def parse_frames(buf: bytearray) -> list[tuple[int, str, bytes]]:
    """Complete frames taken off the front of ``buf`` (a partial one stays in it).
    ProtocolError on anything that is not a frame."""
    out: list[tuple[int, str, bytes]] = []
    while buf:
        m = _HEAD.match(buf)
        if m is None:
            if len(buf) >= _HEAD_MAX or b"\n" in buf[:_HEAD_MAX]:
                raise ProtocolError(f"RELP: not a frame: {bytes(buf[:40])!r}")
            break  # the header is still arriving
        txnr, command, length = int(m[1]), m[2].decode("ascii"), int(m[3])
        if m[4] == b"\n":
            if length:
                raise ProtocolError(f"RELP: frame {txnr} without its data")
            out.append((txnr, command, b""))
            del buf[:m.end()]
            continue
        end = m.end() + length
        if len(buf) < end + 1:
            break
        if buf[end] != 0x0A:
            raise ProtocolError(f"RELP: frame {txnr} without its trailing LF")
        out.append((txnr, command, bytes(buf[m.end():end])))
        del buf[:end + 1]
    return out


class RelpTransport:
    """A RELP session (over TCP or TLS) to one receiver."""

    def __init__(self, host: str, port: int, *, tls: bool, ca_file: str | None = None,
                 server_name: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float = 10.0,
                 window: int = RELP_WINDOW) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.timeout, self.window = timeout, window
        self._context = tls_context(ca_file, cert_file, key_file) if tls else None
        self.server_name = server_name or host
        self._sock: socket.socket | None = None
        self._txnr = 0
        self._pending: OrderedDict[int, int] = OrderedDict()  # txnr -> audit sequence
        self._buf = bytearray()
        self._eof = False
        self.name = self.transport_name(tls=tls)

    @staticmethod
    def transport_name(*, tls: bool) -> str:
        """The destination's name (and its cursor file's): ``relp-tls`` or ``relp``."""
        return "relp-tls" if tls else "relp"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _next_txnr(self) -> int:
        self._txnr = self._txnr % _TXNR_MAX + 1
        return self._txnr

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = raw
        try:
            if self._context is not None:
                sock = self._context.wrap_socket(raw, server_hostname=self.server_name)
            self._sock, self._txnr, self._eof = sock, 0, False
            self._pending.clear()
            self._buf.clear()
            txnr = self._next_txnr()
            sock.sendall(encode_frame(txnr, "open", _OFFER))
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:  # a receiver that accepts but never answers
                    raise TimeoutError(f"RELP: no answer to open in {self.timeout:g} s")
                frames = self._read(left)
                if not frames and self._eof:
                    raise ConnectionResetError("RELP: the receiver closed the session at open")
                for rtxnr, command, data in frames:
                    if rtxnr == txnr and command == "rsp":
                        if not data.startswith(b"200"):
                            raise ProtocolError(f"RELP open refused: {data[:80]!r}")
                        return
        except BaseException:
            self.close()
            raise

    def _read(self, timeout: float) -> list[tuple[int, str, bytes]]:
        """Frames available within ``timeout`` (0: only what is there now), everything
        that has arrived: a TLS socket returns one record per recv, a RELP answer each."""
        sock = self._sock
        assert sock is not None
        wait = timeout
        while not self._eof:
            buffered = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not buffered and not select.select([sock], [], [], wait)[0]:
                break
            chunk = sock.recv(65536)
            if not chunk:
                self._eof = True
            self._buf += chunk
            wait = 0
        return parse_frames(self._buf)

    def _take(self, frames: list[tuple[int, str, bytes]]) -> None:
        for txnr, command, data in frames:
            if command == "serverclose":
                raise ConnectionResetError("RELP: the receiver closed the session")
            if command != "rsp" or txnr not in self._pending:
                continue
            if not data.startswith(b"200"):
                raise ProtocolError(f"RELP: message {self._pending[txnr]} refused: "
                                    f"{data[:80]!r}")
            del self._pending[txnr]
        if self._eof:
            raise ConnectionResetError("RELP: the receiver closed the connection")

    def send(self, batch: list[tuple[int, bytes, dict[str, Any]]]) -> None:
        assert self._sock is not None
        frames: list[bytes] = []
        for seq, line, record in batch:
            deadline = time.monotonic() + self.timeout
            while len(self._pending) >= self.window:  # frames not yet sent are pending too
                if frames:
                    self._sock.sendall(b"".join(frames))
                    frames = []
                left = deadline - time.monotonic()
                got = self._read(left) if left > 0 else []
                if not got and not self._eof:
                    raise TimeoutError(f"RELP: no answer in {self.timeout:g} s "
                                       f"({len(self._pending)} messages open)")
                self._take(got)
            txnr = self._next_txnr()
            self._pending[txnr] = seq
            frames.append(encode_frame(txnr, "syslog", format_message(line, record)))
        if frames:
            self._sock.sendall(b"".join(frames))

    def delivered(self) -> bool:
        """Every message sent has been answered ``200`` by the receiver. Raises what went
        wrong (a refusal: ProtocolError; the receiver gone: ConnectionResetError), so the
        shipper reports the cause and reconnects."""
        if self._sock is None:
            return False
        self._take(self._read(0))
        return not self._pending

    def healthy(self) -> bool:
        """True while the session is up; raises, as :meth:`delivered`, when it is not."""
        if self._sock is None:
            return False
        self._take(self._read(0))
        return True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(1.0)
            sock.sendall(encode_frame(self._next_txnr(), "close"))
        with contextlib.suppress(OSError, ValueError):
            if isinstance(sock, ssl.SSLSocket):
                sock.unwrap()
        with contextlib.suppress(OSError):
            sock.close()
