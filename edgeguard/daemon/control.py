"""The control socket: one JSON request line in, one JSON response line out.

Request ``{"command": "status", "args": {}}``; response ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": "..."}``. Every peer's credentials are read with
``SO_PEERCRED`` and its groups with ``SO_PEERGROUPS``. Each command declares where it
is registered (:class:`~edgeguard.daemon.component.Command`) who may run it and whether
it changes state: read-only commands are open to root and the admin group (the socket
is then 0660 root:group, otherwise 0600); commands that change anything need uid 0, and
each one is reported to ``on_change`` (the daemon audits it with the peer's uid, pid and
command line).

No peer can starve the others (``daemon.control``, :mod:`edgeguard.daemon.control_limits`):
connections are capped globally and per peer uid with slots kept for root, an idle
connection is closed after ``idle_timeout``, a request line over ``max_request`` is
refused with an error. Refusals are counted per uid and window and reported to
``on_refusals`` as one summary; only the first refusal of each changing command per uid
and window also goes to ``on_change``.

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
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from edgeguard.clock import Clock, SystemClock
from edgeguard.daemon.component import Command, Peer, Privilege
from edgeguard.daemon.control_limits import ConnectionGate, Refusal, RefusalSummary, RefusalTally
from edgeguard.policy.control import ControlConfig

__all__ = [
    "FEATURE_SECTIONS",
    "BadRequest",
    "ChangeHook",
    "CommandFailed",
    "ControlError",
    "ControlServer",
    "DaemonUnreachable",
    "RefusalHook",
    "Request",
    "disabled_features",
    "parse_request",
    "peer_command_line",
    "peer_groups",
    "peer_of",
    "request",
]

#: ``SO_PEERGROUPS`` (Linux 4.13; not named by Python 3.11's socket module).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_GID = struct.Struct("=I")
#: NGROUPS_MAX: the kernel answers ERANGE to a buffer too small for the peer's groups.
_MAX_GROUPS = 65536
#: The client's wait between connect attempts while the listen backlog is full.
_CONNECT_RETRY = 0.02
#: How often the server looks for refusal windows that have passed.
_FLUSH_INTERVAL = 5.0


class ControlError(Exception):
    """The daemon is unreachable or refused the command; ``details``: the reasons it
    gave, one per line (a refused reload's policy errors, each with file:line)."""

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class DaemonUnreachable(ControlError):
    """No daemon answers on the socket (not running, or the socket is elsewhere)."""


class CommandFailed(Exception):
    """Raised by a command's handler: the command did not do what was asked. The peer
    gets ``message`` and ``details``; the command's audit record has outcome failure."""

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


#: The first word of a control command -> the policy section that turns its feature on.
FEATURE_SECTIONS: Mapping[str, str] = {"media": "media", "net": "network",
                                       "network": "network", "wifi": "wifi",
                                       "kiosk": "kiosk"}


def disabled_features(enabled: Mapping[str, bool]) -> dict[str, str]:
    """command prefix -> why its commands are missing, for each policy section (by name)
    that is turned off: "media is disabled in the policy" instead of "unknown command"."""
    return {prefix: (f"{section} is disabled in the policy ({section}.enabled: false) the "
                     "daemon runs; enable it and restart the daemon to use this command")
            for prefix, section in FEATURE_SECTIONS.items() if not enabled.get(section, True)}


class BadRequest(ValueError):
    """A request line the server cannot take; the message is sent back to the peer."""


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    command: str
    args: dict[str, Any]
    #: The client's own words for its command line (audited when /proc is hidden).
    command_line: str = ""


def parse_request(line: bytes, max_size: int) -> Request:
    """One request line, or :class:`BadRequest` saying what is wrong with it."""
    if len(line) > max_size:
        raise BadRequest(f"request line over {max_size} bytes refused")
    if not line.endswith(b"\n"):
        raise BadRequest("request is not a line")
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"bad request: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("bad request: not a JSON object")
    command, args = raw.get("command"), raw.get("args", {})
    if not isinstance(command, str) or not isinstance(args, dict):
        raise BadRequest("bad request: command must be a string and args an object")
    claimed = raw.get("command_line")
    return Request(command, args, claimed[:4096] if isinstance(claimed, str) else "")


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


def _with_command_line(peer: Peer, claimed: str) -> Peer:
    seen = peer_command_line(peer.pid)
    if seen:
        return dataclasses.replace(peer, command_line=seen, command_line_source="proc")
    return dataclasses.replace(peer, command_line=claimed, command_line_source="client")


#: Called after a changing command: (peer, command, args, ok, error).
ChangeHook = Callable[[Peer, str, Mapping[str, Any], bool, str], None]
#: Called with one uid's refusals once their window has passed.
RefusalHook = Callable[[RefusalSummary], None]


class ControlServer:
    def __init__(self, path: Path, commands: Mapping[str, Command], *,
                 admin_gid: int | None = None, on_change: ChangeHook | None = None,
                 config: ControlConfig | None = None, on_refusals: RefusalHook | None = None,
                 clock: Clock | None = None, disabled: Mapping[str, str] | None = None,
                 ) -> None:
        self.path = path
        self.commands = dict(commands)
        #: command prefix -> why it is not served (:func:`disabled_features`)
        self.disabled = dict(disabled or {})
        self.admin_gid = admin_gid
        self.on_change = on_change
        self.on_refusals = on_refusals
        self.config = config or ControlConfig()
        self.gate = ConnectionGate(self.config)
        self.tally = RefusalTally(clock or SystemClock(), self.config.audit_window)
        self.requests = 0
        self.refused = 0
        self.connections_refused = 0
        self.bad_requests = 0
        self.idle_closed = 0
        #: Why the admin group cannot use the socket ("" when it can, or has none).
        self.problem = ""
        self._server: asyncio.AbstractServer | None = None
        self._flusher: asyncio.TimerHandle | None = None

    def counters(self) -> dict[str, int]:
        return {"requests": self.requests, "refused": self.refused,
                "connections_active": self.gate.active,
                "connections_refused": self.connections_refused,
                "bad_requests": self.bad_requests, "idle_closed": self.idle_closed}

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.path.is_socket():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            # limit: readuntil() refuses a longer line instead of buffering it.
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=self.config.max_request)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660 if self._give_to_admins() else 0o600)
        self._schedule_flush()

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
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.flush(force=True)

    def flush(self, *, force: bool = False) -> None:
        """Report the refusal summaries whose window has passed."""
        for summary in self.tally.flush(force=force):
            if self.on_refusals is not None and summary.total > summary.audited:
                self.on_refusals(summary)

    def _schedule_flush(self) -> None:
        def tick() -> None:
            self.flush()
            self._schedule_flush()
        interval = min(_FLUSH_INTERVAL, self.config.audit_window)
        self._flusher = asyncio.get_running_loop().call_later(interval, tick)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock) if sock is not None else Peer(-1, -1, -1)
        except OSError:
            writer.close()
            return
        refusal = self.gate.admit(peer.uid)
        if refusal is not None:
            # Answered and closed at once: the descriptor is free again right away.
            self.connections_refused += 1
            self.tally.add(peer.uid, Refusal.CONNECTIONS)
            with contextlib.suppress(OSError):
                writer.write(_error(refusal))
            writer.close()
            return
        try:
            response = await self._exchange(reader, peer)
            if response is not None:
                writer.write(orjson.dumps(response) + b"\n")
                await asyncio.wait_for(writer.drain(), self.config.idle_timeout)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.gate.release(peer.uid)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, peer: Peer,
                        ) -> dict[str, Any] | None:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), self.config.idle_timeout)
        except TimeoutError:
            self.idle_closed += 1
            return {"ok": False, "error": "idle: no request within "
                    f"{self.config.idle_timeout:g}s"}
        except asyncio.LimitOverrunError:
            line = b"x" * (self.config.max_request + 1)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            line = exc.partial
        self.requests += 1
        try:
            req = parse_request(line, self.config.max_request)
        except BadRequest as exc:
            self.bad_requests += 1
            self.tally.add(peer.uid, Refusal.BAD_REQUEST)
            return {"ok": False, "error": str(exc)}
        return await self.answer(req, peer)

    async def answer(self, req: Request, peer: Peer) -> dict[str, Any]:
        """The response to one parsed request from ``peer``."""
        command = self.commands.get(req.command)
        if command is None:
            self.bad_requests += 1
            self.tally.add(peer.uid, Refusal.BAD_REQUEST, req.command[:64])
            why = self.disabled.get(req.command.partition(".")[0])
            return {"ok": False, "error": why or f"unknown command {req.command[:64]!r}"}
        refusal = self._refusal(peer, req.command, command)
        if refusal is not None:
            self.refused += 1
            first = self.tally.add(peer.uid, Refusal.PRIVILEGE, req.command,
                                   individually=command.changes_state)
            if first and self.on_change is not None:
                self.on_change(_with_command_line(peer, req.command_line), req.command,
                               req.args, False, refusal)
            return {"ok": False, "error": refusal}
        peer = _with_command_line(peer, req.command_line)
        try:
            result = await command.handler(peer, req.args)
        except CommandFailed as exc:
            self._audit(command, peer, req, False, "; ".join((str(exc), *exc.details))[:4000])
            return {"ok": False, "error": str(exc), "details": list(exc.details)}
        except Exception as exc:  # noqa: BLE001 - report, never kill the daemon
            error = f"{type(exc).__name__}: {exc}"
            self._audit(command, peer, req, False, error)
            return {"ok": False, "error": error}
        self._audit(command, peer, req, True, "")
        return {"ok": True, "result": result}

    def _audit(self, command: Command, peer: Peer, req: Request, ok: bool, error: str) -> None:
        if command.changes_state and self.on_change is not None:
            self.on_change(peer, req.command, req.args, ok, error)

    def _refusal(self, peer: Peer, name: str, command: Command) -> str | None:
        if peer.uid == 0:
            return None
        if command.privilege is Privilege.ROOT:
            return f"{name} needs root"
        if self.admin_gid is not None and self.admin_gid in peer.groups | {peer.gid}:
            return None
        return f"{name} needs root or the admin group"


def _error(message: str) -> bytes:
    return orjson.dumps({"ok": False, "error": message}) + b"\n"


def _connect(path: Path | str, timeout: float) -> socket.socket:
    """Connect, trying again while the listen backlog is full (EAGAIN) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            sock.close()
            if time.monotonic() + _CONNECT_RETRY >= deadline:
                raise
            time.sleep(_CONNECT_RETRY)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


def request(path: Path | str, command: str, args: Mapping[str, Any] | None = None,
            timeout: float = 10.0) -> Any:
    """Send one command to the running daemon and return its result."""
    payload = orjson.dumps({"command": command, "args": dict(args or {}),
                            "command_line": shlex.join(sys.argv)}) + b"\n"
    try:
        with _connect(path, timeout) as sock:
            sock.sendall(payload)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except PermissionError as exc:
        # the daemon is there, this user may not ask it: not "no daemon" (exit 3)
        raise ControlError(f"cannot use edgeguard's control socket {path}: "
                           f"{exc.strerror or exc} (root and members of the policy's "
                           "daemon.admin_group only)") from None
    except OSError as exc:
        raise DaemonUnreachable(f"cannot reach edgeguard at {path}: {exc.strerror or exc} "
                                "(is the daemon running? systemctl status edgeguard)"
                                ) from None
    try:
        response = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ControlError("the daemon sent no valid answer") from None
    if not isinstance(response, dict):
        raise ControlError("the daemon sent no valid answer")
    if not response.get("ok"):
        details = response.get("details")
        raise ControlError(str(response.get("error")), tuple(
            str(d) for d in details) if isinstance(details, list) else ())
    return response.get("result")
