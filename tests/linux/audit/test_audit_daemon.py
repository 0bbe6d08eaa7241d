"""The real daemon with the audit component: sealed checkpoints while idle, syslog
shipping over TLS to a real rsyslog, and a kill -9 + restart that continues the chain,
all checked off-host style with `audit verify --key --against`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest
from rsyslog_helpers import Rsyslog

from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon

pytestmark = pytest.mark.linux


def _policy(tmp_path: Path, rs: Rsyslog, key: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""media:
  enabled: false
audit:
  key_file: {key}
  checkpoint_interval: 1s
  shipping:
    cursor_directory: {tmp_path / "cursors"}
    syslog:
      enabled: true
      host: 127.0.0.1
      port: {rs.tls_port}
      tls: true
      ca_file: {rs.ca}
      server_name: localhost
      reconnect_interval: 200ms
""")
    return path


def _wait(cond: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():  # type: ignore[operator]
        time.sleep(0.2)


def test_daemon_seals_ships_and_survives_kill_9(tmp_path: Path, rsyslog: Rsyslog) -> None:
    key, export = tmp_path / "state" / "audit.key", tmp_path / "k0.key"
    assert run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key)]).returncode == 0
    policy = _policy(tmp_path, rsyslog, key)
    first = Daemon(tmp_path, policy)
    first.notify.wait_for("READY=1")

    def checkpoints() -> int:
        return sum(1 for r in first.records()
                   if r["event"]["action"] == "audit-checkpoint")  # type: ignore[index]

    _wait(lambda: checkpoints() >= 2)  # idle, yet sealed every second
    audit = first.status()["sources"]["audit"]  # type: ignore[index]
    assert audit["running"]  # type: ignore[index]
    assert audit["counters"]["checkpoints"] >= 2  # type: ignore[index]
    first.proc.send_signal(signal.SIGKILL)  # no shutdown checkpoint, no flush
    first.proc.wait(timeout=10)
    first.notify.sock.close()
    first.notify.path.unlink()

    second = Daemon(tmp_path, policy)
    second.notify.wait_for("READY=1")
    restarted = max(r["event"]["sequence"] for r in second.records()  # type: ignore[index]
                    if r["event"]["action"] == "edgeguard-started")  # type: ignore[index]

    def shipped_upto() -> int:
        return max((orjson.loads(x)["event"]["sequence"] for x in rsyslog.lines()), default=0)

    _wait(lambda: shipped_upto() > restarted)  # the restarted daemon ships the rest
    assert second.stop() == 0
    records = [orjson.loads(x) for p in sorted((tmp_path / "audit").glob("audit*.jsonl"))
               for x in p.read_bytes().splitlines()]
    # written after the shipper stopped (edgeguard-stopped, the shutdown checkpoint):
    # shipped by the next start, from the cursor
    stopped = next(r["event"]["sequence"] for r in records
                   if r["event"]["action"] == "edgeguard-stopped")
    proc = run_edgeguard(["audit", "verify", "--key", str(export), "--against",
                          str(rsyslog.output), str(tmp_path / "audit")])
    assert proc.returncode == 0, proc.stdout
    assert "checkpoints verified" in proc.stdout
    shipped = {orjson.loads(x)["event"]["sequence"] for x in rsyslog.lines()}
    assert shipped >= set(range(1, stopped))
    assert any(r["event"]["action"] == "audit-checkpoint" and r["event"]["sequence"] > restarted
               for r in records)  # the restarted daemon sealed too
    assert orjson.loads(key.read_bytes())["epoch"] >= 3  # the key moved on
