"""A real edgeguard daemon subprocess for tests, with a NOTIFY_SOCKET like systemd's."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from edgeguard.daemon.control import request
from tests.conftest import edgeguard_argv, edgeguard_env

__all__ = ["Daemon", "Notify"]


class Notify:
    """A NOTIFY_SOCKET listener like systemd's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, state: str, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if state in msg.split("\n"):
                return self.messages
        raise AssertionError(f"no {state} within {timeout}s; got {self.messages}")


class Daemon:
    def __init__(self, tmp: Path, policy: Path, extra_env: dict[str, str] | None = None,
                 sock: Path | None = None, policy_files: tuple[Path, ...] = ()) -> None:
        self.tmp = tmp
        self.audit = tmp / "audit"
        self.sock = sock or tmp / "control.sock"
        self.notify = Notify(tmp / "notify.sock")
        env = edgeguard_env({"NOTIFY_SOCKET": str(self.notify.path), **(extra_env or {})})
        self.proc = subprocess.Popen(
            edgeguard_argv("run", *(a for p in (policy_files or (policy,))
                                    for a in ("--policy", str(p))),
                           "--audit-dir", str(self.audit),
                           "--control-socket", str(self.sock), "--state-dir", str(tmp / "state")),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status(self) -> dict[str, object]:
        """The daemon's own status answer over the control socket (internal shape:
        ``pid``, ``mode``, ``sources``...). ``edgeguard status --json`` renders it as
        one ECS line; tests/unit/test_json_contract.py checks that rendering."""
        status: dict[str, object] = request(self.sock, "status", {})
        return status

    def records(self) -> list[dict[str, object]]:
        lines = (self.audit / "audit.jsonl").read_bytes().splitlines()
        return [orjson.loads(line) for line in lines]

    @classmethod
    @contextlib.contextmanager
    def running(cls, tmp: Path, policy: Path, extra_env: dict[str, str] | None = None,
                sock: Path | None = None, policy_files: tuple[Path, ...] = (),
                ) -> Iterator[Daemon]:
        """Started and READY inside the block; killed and reaped after it if the test
        did not stop it."""
        d = cls(tmp, policy, extra_env, sock, policy_files)
        try:
            d.notify.wait_for("READY=1")
            yield d
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
