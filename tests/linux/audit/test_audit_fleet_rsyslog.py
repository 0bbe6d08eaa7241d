"""Fleet verification of trails received through a real rsyslogd (issue 22): five simulated
hosts ship over TCP with the real shipper to the receiver config of
docs/examples/rsyslog-edgeguard.conf (every host in one file); one is intact (and the
receiver restarts while it ships), one was edited on the host before it was shipped, one
is cut at the source after shipping, one went quiet an hour ago, one never sent anything.
``edgeguard audit verify --fleet`` names each."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from rsyslog_helpers import Rsyslog

from edgeguard.audit.chain import canonical
from edgeguard.audit.keys import enrol
from edgeguard.audit.shipper import Shipper
from edgeguard.audit.syslog import SyslogTransport
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock, SystemClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome
from tests.conftest import run_edgeguard

pytestmark = pytest.mark.linux

COUNT = 150


def _record(host: str, i: int) -> AuditRecord:
    return AuditRecord(action="scan-syn", message=f"{host}: probe {i}", kind=EventKind.ALERT,
                       category=("network",), outcome=Outcome.SUCCESS,
                       source=Endpoint(ip=f"10.0.{i % 200}.7"), rule_id="net-scan")


def _wait(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.2)


class Host:
    """One simulated gateway or kiosk: its trail (sealed with its own K0) and its shipper."""

    def __init__(self, root: Path, name: str, keys: Path, rs: Rsyslog, *,
                 past: float = 0.0) -> None:
        self.name = name
        self.log = root / name / "log"
        key_file = root / name / "audit.key"
        key_file.parent.mkdir(parents=True)
        enrol(key_file, keys / f"{name}.key")
        clock = FakeClock(time.time() - past) if past else SystemClock()
        self.writer = AuditWriter(self.log, clock=clock, host=name, segment_size=16 * 1024,
                                  fsync_interval=0.05, key_file=key_file,
                                  checkpoint_records=20)
        transport = SyslogTransport("127.0.0.1", rs.tcp_port, tls=False)
        self.shipper = Shipper(self.log, transport, root / name / "cursor", resend=100,
                               reconnect_interval=0.5)
        self.started = False

    def write(self, count: int) -> None:
        for i in range(count):
            self.writer.write(_record(self.name, i))
        self.writer.flush()

    def ship_all(self) -> None:
        if not self.started:
            self.shipper.start()
            self.started = True
        last = self.writer.head[0]
        _wait(lambda: self.shipper.shipped_sequence >= last, 60)
        assert self.shipper.shipped_sequence >= last, self.name

    def close(self) -> None:
        if self.started:
            self.shipper.stop()
        self.writer.close()


def _edit_on_host(log: Path, sequence: int) -> None:
    """An intruder edits a record on the host before the shipper has sent it."""
    active = log / "audit.jsonl"
    for seg in [*sorted(log.glob("audit-*.jsonl")), active]:
        lines = seg.read_bytes().splitlines(keepends=True)
        for index, line in enumerate(lines):
            rec = orjson.loads(line)
            if rec["event"]["sequence"] == sequence:
                rec["message"] = "nothing to see"
                lines[index] = canonical(rec) + b"\n"
                seg.write_bytes(b"".join(lines))
                return
    raise LookupError(sequence)


def test_fleet_through_rsyslog(tmp_path: Path, rsyslog: Rsyslog) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    hosts = {name: Host(tmp_path, name, keys, rsyslog, past=3600.0 if name == "kiosk-4" else 0)
             for name in ("gw-1", "kiosk-2", "kiosk-3", "kiosk-4")}
    enrol(tmp_path / "kiosk-5.key.evolving", keys / "kiosk-5.key")  # enrolled, never sends
    try:
        gw = hosts["gw-1"]
        gw.write(COUNT)
        gw.ship_all()
        rsyslog.stop()  # the receiver goes away mid-stream and comes back
        gw.write(COUNT)
        rsyslog.start()
        gw.ship_all()

        hosts["kiosk-2"].write(COUNT)
        _edit_on_host(hosts["kiosk-2"].log, 40)
        hosts["kiosk-2"].ship_all()

        hosts["kiosk-3"].write(COUNT)
        hosts["kiosk-3"].ship_all()

        hosts["kiosk-4"].write(COUNT)
        hosts["kiosk-4"].ship_all()
    finally:
        for host in hosts.values():
            host.close()
    # kiosk-3's newest records are cut on the host after they were shipped (root, later)
    active = hosts["kiosk-3"].log / "audit.jsonl"
    active.write_bytes(b"".join(active.read_bytes().splitlines(keepends=True)[:-6]))

    collector = tmp_path / "collector"
    collector.mkdir()
    collector.joinpath("edgeguard.jsonl").write_bytes(rsyslog.output.read_bytes())
    result = run_edgeguard(["audit", "verify", "--fleet", str(collector), "--keys", str(keys),
                            "--host-copy", f"kiosk-3={hosts['kiosk-3'].log}", "--json"])
    assert result.returncode == 1, result.stderr
    rows = {r["host"]["name"]: r for r in map(orjson.loads, result.stdout.splitlines())}
    status = {name: row["edgeguard"]["fleet"]["status"] for name, row in rows.items()}
    assert status == {"gw-1": "verified", "kiosk-2": "tampered", "kiosk-3": "truncated-at-source",
                      "kiosk-4": "silent", "kiosk-5": "silent"}, result.stdout
    gw_row = rows["gw-1"]["edgeguard"]
    assert gw_row["fleet"]["sealed"] is True
    assert gw_row["audit"]["checkpoints"] >= 15
    # the reconnect resent up to resend_on_reconnect records: duplicates, not problems
    assert 0 < gw_row["fleet"]["duplicates"] <= 100
    assert rows["kiosk-2"]["event"]["sequence"] == 40
    # the same verdicts, one line per host, for a person
    text = run_edgeguard(["audit", "verify", "--fleet", str(collector), "--keys", str(keys),
                          "--host-copy", f"kiosk-3={hosts['kiosk-3'].log}"])
    assert len(text.stdout.splitlines()) == 5
