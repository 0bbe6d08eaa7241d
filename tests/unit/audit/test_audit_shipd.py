"""Remote shipping apart from the daemon: ``edgeguard audit ship`` as a process (a plain
TCP syslog receiver on loopback stands in for rsyslog; tests/linux/audit runs the real
one), and the daemon's audit component reading that process's cursor files."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from audit_helpers import sample_record, write_log

from edgeguard.audit.service import AuditService, remote_cursors
from edgeguard.audit.shipper import Cursor
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.policy.load import load_policy
from tests.conftest import edgeguard_argv, edgeguard_env
from tests.support.daemon import Notify
from tests.support.process import terminate


class Receiver:
    """RFC 6587 octet-counted syslog over TCP on 127.0.0.1: the sequences received."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.sequences: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                buf = b""
                while not self._stop.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    buf += chunk
                    buf = self._frames(buf)

    def _frames(self, buf: bytes) -> bytes:
        while b" " in buf:
            length, _, rest = buf.partition(b" ")
            if len(rest) < int(length):
                break
            frame, buf = rest[: int(length)], rest[int(length):]
            record = orjson.loads(frame[frame.index(b"{"):])
            self.sequences.append(record["event"]["sequence"])
        return buf

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    try:
        yield rx
    finally:
        rx.close()


def _policy(path: Path, cursors: Path, port: int) -> Path:
    path.write_text(f"""audit:
  shipping:
    cursor_directory: {cursors}
    syslog:
      enabled: true
      host: 127.0.0.1
      port: {port}
      tls: false
      reconnect_interval: 200ms
""")
    return path


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def ship(tmp_path: Path, policy: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str],
                                                                      Notify]]:
    """``edgeguard audit ship`` as systemd would start it, ready; stopped at the end."""
    notify = Notify(tmp_path / "notify.sock")
    proc = subprocess.Popen(
        edgeguard_argv("audit", "ship", "--policy", str(policy), "--audit-dir", str(log)),
        env=edgeguard_env({"NOTIFY_SOCKET": str(notify.path)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        notify.wait_for("READY=1", timeout=30)
        yield proc, notify
    finally:
        terminate(proc)


def test_ship_process_ships_reloads_and_stops(tmp_path: Path, receiver: Receiver) -> None:
    log = write_log(tmp_path / "log", 30)
    policy = _policy(tmp_path / "policy.yaml", tmp_path / "cursors", receiver.port)
    with ship(tmp_path, policy, log) as (proc, notify):
        assert any("syslog-tcp" in m for m in notify.messages)
        write_log(log, 5)  # the writer appends while the shipper follows
        _wait(lambda: set(range(1, 36)) <= set(receiver.sequences), "records at receiver")
        cursor = tmp_path / "cursors" / "syslog-tcp.cursor"
        _wait(lambda: Cursor.load(cursor).sequence >= 35, "cursor saved")

        policy.write_text("audit:\n  segment_size: nonsense\n")  # a bad policy on reload
        notify.messages.clear()
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        assert any("policy reload refused" in m for m in notify.messages)
        assert proc.poll() is None  # the running policy stays

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "STOPPING=1" in notify.wait_for("STOPPING=1")


def test_ship_process_without_a_remote_destination_idles(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("audit:\n  segment_size: 1MiB\n")
    with ship(tmp_path, tmp_path / "p.yaml", tmp_path / "log") as (proc, notify):
        assert any("no remote destination" in m for m in notify.messages)
        time.sleep(0.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_ship_process_refuses_a_bad_policy_at_start(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("audit:\n  shipping:\n    syslog:\n      port: 0\n")
    proc = subprocess.run(edgeguard_argv("audit", "ship", "--policy", str(tmp_path / "p.yaml")),
                          env=edgeguard_env(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    assert f"{tmp_path / 'p.yaml'}:4:" in proc.stderr


def test_daemon_without_remote_shipping_reads_the_ship_process_cursor(tmp_path: Path) -> None:
    """``run --no-remote-shipping``: no syslog thread in the daemon; retention and status
    go by the cursor file ``edgeguard audit ship`` keeps (another chain's counts as 0)."""
    policy = load_policy([_policy(tmp_path / "p.yaml", tmp_path / "cursors", 9)]).policy
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    service = AuditService(policy)
    cursor_file = remote_cursors(policy.audit.shipping)["syslog-tcp"]

    async def run() -> tuple[int | None, int | None, list[dict[str, object]]]:
        loop = asyncio.get_running_loop()
        ctx = Context(loop=loop, clock=clock, audit=writer, policy=policy,
                      state_dir=tmp_path, submit=lambda f, s: None,  # type: ignore[arg-type,return-value]
                      ship_remote=False)
        service.start(ctx)
        for i in range(10):
            writer.write(sample_record(i))
        before = service.shipped_sequence()
        Cursor("another-chain", 99).save(cursor_file)
        other = service.shipped_sequence()
        Cursor(writer.chain_id, 7).save(cursor_file)
        status = await service.commands()["audit.status"](Peer(1, 0, 0), {})
        assert service.counters()["syslog-tcp.cursor"] == 7  # in `edgeguard status`
        service.stop()
        return before, other, status["shippers"]  # type: ignore[return-value]

    before, other, shippers = asyncio.run(run())
    writer.close()
    assert service.shippers == []  # nothing shipped from inside the daemon
    assert before == 0  # enabled but nothing delivered yet: retention keeps everything
    assert other == 0
    assert shippers == [{"name": "syslog-tcp", "cursor": 7, "last_error": "",
                         "failing_since": None, "cause": None, "failures": 0,
                         "process": "edgeguard audit ship"}]
