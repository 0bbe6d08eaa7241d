"""A minimal QMP client: enough to hot-plug and unplug USB devices and their backends.

QMP interleaves asynchronous events with command replies on one socket; replies are
matched by ``id`` and events are queued so a caller can wait for e.g. DEVICE_DELETED.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

__all__ = ["QMP", "QMPError"]


class QMPError(RuntimeError):
    """QEMU answered a command with an error."""


class QMP:
    """One connection to QEMU's monitor socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise ConnectionError("QMP socket closed")
        msg: dict[str, Any] = json.loads(line)
        return msg

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command and return its ``return`` value."""
        ident = next(self._ids)
        msg: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif reply.get("id") == ident:
                if "error" in reply:
                    raise QMPError(f"{command}: {reply['error'].get('desc', reply['error'])}")
                return reply.get("return")

    def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any]:
        """Wait for (or find already queued) an event whose data contains ``data``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in list(self.events):
                if ev["event"] == name and all(ev.get("data", {}).get(k) == v
                                               for k, v in data.items()):
                    self.events.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no QMP event {name} {data} within {timeout} s")
            self._sock.settimeout(left)
            try:
                self.events.append(self._read())
            except TimeoutError:
                continue
            finally:
                self._sock.settimeout(30.0)

    def close(self) -> None:
        self._file.close()
        self._sock.close()
