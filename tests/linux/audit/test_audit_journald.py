"""journald's native protocol: records come back from `journalctl -o json` with their
ECS fields flattened to journald names. Uses the running journald, or starts the
standalone /lib/systemd/systemd-journald and stops it (by PID) afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from edgeguard.audit.journald import JournaldTransport
from edgeguard.audit.shipper import Shipper
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import SystemClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome, Severity

pytestmark = pytest.mark.linux

JOURNALD = "/lib/systemd/systemd-journald"
JOURNALCTL = "/bin/journalctl"
SOCKET = "/run/systemd/journal/socket"


def _running() -> bool:
    out = subprocess.run(["/usr/bin/pgrep", "-x", "systemd-journal"], check=False,
                         capture_output=True)
    return out.returncode == 0


@pytest.fixture
def journald() -> Iterator[str]:
    if _running():
        yield SOCKET
        return
    if not os.access(JOURNALD, os.X_OK):
        pytest.skip("systemd-journald is not installed")
    Path("/run/systemd/journal").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                JournaldTransport(SOCKET).connect()
                break
            except OSError:
                time.sleep(0.1)
        yield SOCKET
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _entries(chain_id: str) -> list[dict[str, object]]:
    out = subprocess.run([JOURNALCTL, "-o", "json", "--all", "--no-pager",
                          f"EDGEGUARD_CHAIN_ID={chain_id}"], capture_output=True, check=False)
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def test_records_come_back_from_journalctl_with_their_fields(tmp_path: Path,
                                                             journald: str) -> None:
    log = tmp_path / "log"
    writer = AuditWriter(log, clock=SystemClock(), host="kiosk-7")
    shipper = Shipper(log, JournaldTransport(journald), tmp_path / "journald.cursor", resend=0)
    shipper.start()
    try:
        for i in range(50):
            writer.write(AuditRecord(
                action="scan-syn", message=f"10.0.0.{i} probed 25 ports\nsecond line",
                kind=EventKind.ALERT, category=("network", "intrusion_detection"),
                outcome=Outcome.SUCCESS, severity=Severity.SEVERE, rule_id="net-scan",
                source=Endpoint(ip=f"10.0.0.{i}", port=40000 + i),
                fields={"edgeguard.scan.ports": 25, "edgeguard.big": "x" * (300_000 if i == 7
                                                                           else 10)}))
        last = writer.head[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and shipper.shipped_sequence < last:
            time.sleep(0.1)
        entries: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(entries) < last:
            entries = _entries(writer.chain_id)
            time.sleep(0.3)
    finally:
        shipper.stop()
        writer.close()
    assert shipper.shipped_sequence == last
    assert sorted(int(str(e["EVENT_SEQUENCE"])) for e in entries) == list(range(1, last + 1))
    alert = next(e for e in entries if e.get("SOURCE_IP") == "10.0.0.3")
    assert alert["MESSAGE"] == "10.0.0.3 probed 25 ports\nsecond line"
    assert alert["EVENT_ACTION"] == "scan-syn"
    assert alert["EVENT_CATEGORY"] == "network,intrusion_detection"
    assert alert["SOURCE_PORT"] == "40003"
    assert alert["RULE_ID"] == "net-scan"
    assert alert["EDGEGUARD_SCAN_PORTS"] == "25"
    assert alert["PRIORITY"] == "2"
    assert alert["SYSLOG_IDENTIFIER"] == "edgeguard"
    assert alert["HOST_NAME"] == "kiosk-7"
    record = orjson.loads(str(alert["EDGEGUARD_RECORD"]))
    assert record["event"]["hash"] == alert["EVENT_HASH"]
    big = next(e for e in entries if e.get("SOURCE_IP") == "10.0.0.7")  # sent as a memfd
    assert len(str(big["EDGEGUARD_BIG"])) == 300_000
