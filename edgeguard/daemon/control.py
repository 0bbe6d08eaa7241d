"""The control socket: one JSON request line in, one JSON response line out.

Request ``{"command": "status", "args": {}}``; response ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": "..."}``. Every peer's credentials are read with
``SO_PEERCRED`` and its groups with ``SO_PEERGROUPS``: read-only commands are open to
root and the admin group (the socket is then 0660 root:group, otherwise 0600); commands
that change anything need uid 0, and each one is reported to ``on_change`` (the daemon
audits it with the peer's uid, pid and command line).

Nothing here needs ``/proc/<pid>`` of the peer: the hardened unit mounts ``/proc`` with
``hidepid=invisible``, where the daemon, without CAP_SYS_PTRACE, sees no process but its
own. The client sends its command line with the request; the daemon audits
``/proc/<pid>/cmdline`` when it can read it and the client's words otherwise, and says
which (the uid, gid, groups and pid always come from the kernel).

The socket's group: given with ``chown`` when the process may (CAP_CHOWN), else taken
from a set-group-ID socket directory that ``edgeguard prepare`` made; when neither, the
socket stays 0600 (root only) and :attr:`ControlServer.problem` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import shlex
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from edgeguard.daemon.component import CommandHandler, Peer

__all__ = [
    "READ_ONLY_COMMANDS",
    "ChangeHook",
    "ControlError",
    "ControlServer",
    "peer_command_line",
    "peer_groups",
    "peer_of",
    "request",
]

MAX_REQUEST = 64 * 1024
#: ``SO_PEERGROUPS`` (Linux 4.13; not named by Python 3.11's socket module).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_GID = struct.Struct("=I")
#: NGROUPS_MAX: the kernel answers ERANGE to a buffer too small for the peer's groups.
_MAX_GROUPS = 65536
#: Commands any peer allowed to connect may run; everything else needs root.
READ_ONLY_COMMANDS = frozenset({"status", "media.list", "wifi.status", "net.blocks"})


class ControlError(Exception):
    """The daemon is unreachable or refused the command."""


def peer_of(sock: socket.socket) -> Peer:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return Peer(pid=pid, uid=uid, gid=gid, groups=peer_groups(sock))


def peer_groups(sock: socket.socket) -> frozenset[int]:
    """The peer's supplementary groups as the kernel recorded them at connect()."""
    for count in (256, _MAX_GROUPS):
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, count * _GID.size)
        except OSError as exc:
            if exc.errno == errno.ERANGE:
                continue
            return frozenset()
        return frozenset(g for (g,) in _GID.iter_unpack(raw[: len(raw) // 4 * 4]))
    return frozenset()


def peer_command_line(pid: int) -> str:
    """``/proc/<pid>/cmdline``, or "" when it cannot be read (gone, or hidden)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read(4096).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _with_command_line(peer: Peer, claimed: object) -> Peer:
    seen = peer_command_line(peer.pid)
    if seen:
        return dataclasses.replace(peer, command_line=seen, command_line_source="proc")
    text = claimed[:4096] if isinstance(claimed, str) else ""
    return dataclasses.replace(peer, command_line=text, command_line_source="client")


#: Called after a changing command: (peer, command, args, ok, error).
ChangeHook = Callable[[Peer, str, Mapping[str, Any], bool, str], None]


class ControlServer:
    def __init__(self, path: Path, handlers: Mapping[str, CommandHandler],
                 admin_gid: int | None = None, on_change: ChangeHook | None = None) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.admin_gid = admin_gid
        self.on_change = on_change
        self.requests = 0
        self.refused = 0
        #: Why the admin group cannot use the socket ("" when it can, or has none).
        self.problem = ""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.path.is_socket():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660 if self._give_to_admins() else 0o600)

    def _give_to_admins(self) -> bool:
        """root:<admin group>: from the set-group-ID directory, or by chown when we may."""
        if self.admin_gid is None:
            return False
        if self.path.stat().st_gid == self.admin_gid:
            return True
        try:
            os.chown(self.path, 0, self.admin_gid)
        except PermissionError:
            self.problem = (f"control socket stays root-only: cannot give it to group "
                            f"{self.admin_gid} without CAP_CHOWN; run `edgeguard prepare` "
                            f"as root to make {self.path.parent} set-group-ID")
            return False
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            response = await self._answer(line, writer)
            writer.write(orjson.dumps(response) + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> dict[str, Any]:
        self.requests += 1
        sock = writer.get_extra_info("socket")
        peer = peer_of(sock) if sock is not None else Peer(-1, -1, -1)
        if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
            return {"ok": False, "error": "request too long or not a line"}
        try:
            request = orjson.loads(line)
            command = request["command"]
            args = request.get("args", {})
            if not isinstance(command, str) or not isinstance(args, dict):
                raise TypeError("command must be a string and args an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        peer = _with_command_line(peer, request.get("command_line"))
        handler = self.handlers.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}"}
        changing = command not in READ_ONLY_COMMANDS
        refusal = self._refusal(peer, command, changing)
        if refusal is not None:
            self.refused += 1
            if changing and self.on_change is not None:
                self.on_change(peer, command, args, False, refusal)
            return {"ok": False, "error": refusal}
        try:
            result = await handler(peer, args)
        except Exception as exc:  # noqa: BLE001 - report, never kill the daemon
            error = f"{type(exc).__name__}: {exc}"
            if changing and self.on_change is not None:
                self.on_change(peer, command, args, False, error)
            return {"ok": False, "error": error}
        if changing and self.on_change is not None:
            self.on_change(peer, command, args, True, "")
        return {"ok": True, "result": result}

    def _refusal(self, peer: Peer, command: str, changing: bool) -> str | None:
        if peer.uid == 0:
            return None
        if changing:
            return f"{command} needs root"
        if self.admin_gid is not None and self.admin_gid in peer.groups | {peer.gid}:
            return None
        return f"{command} needs root or the admin group"


def request(path: Path | str, command: str, args: Mapping[str, Any] | None = None,
            timeout: float = 10.0) -> Any:
    """Send one command to the running daemon and return its result."""
    payload = orjson.dumps({"command": command, "args": dict(args or {}),
                            "command_line": shlex.join(sys.argv)}) + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(payload)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise ControlError(f"cannot reach edgeguard at {path}: {exc.strerror or exc}") from None
    try:
        response = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ControlError("the daemon sent no valid answer") from None
    if not response.get("ok"):
        raise ControlError(str(response.get("error")))
    return response.get("result")
