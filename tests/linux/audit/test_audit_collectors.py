"""Shipping to the collectors a trust runs, for real (issue 22): rsyslog over TCP, TLS,
RELP and RELP over TLS (rsyslog-relp), syslog-ng over TCP and TLS (Debian's
syslog-ng-core has no RELP). Each receiver runs from its docs/examples/ config on
loopback ports, is stopped mid-stream and started again: every record arrives, nothing
is lost, duplicates (by chain id + sequence) are only those the transport documents, and
the shipper said why it could not deliver while the receiver was down."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from collector_helpers import (
    IMRELP,
    RSYSLOGD,
    Collector,
    client_cert,
    render,
    rsyslog,
    rsyslog_relp,
    syslog_ng,
    syslog_ng_collector,
)
from rsyslog_helpers import make_certs

from edgeguard.audit.relp import RelpTransport
from edgeguard.audit.shipper import TCP_ACK_SETTLE, Shipper, Transport
from edgeguard.audit.shipstate import FailureCause
from edgeguard.audit.syslog import SyslogTransport
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import SystemClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome
from tests.conftest import run_edgeguard

pytestmark = pytest.mark.linux

RESEND = 100  # audit.shipping.syslog.resend_on_reconnect for TCP and TLS
OUTAGE = 2.0  # seconds each receiver is down mid-stream


@dataclass(frozen=True)
class Case:
    collector: str  # rsyslog, rsyslog-relp, syslog-ng
    transport: str  # the collector's port name: tcp, tls, relp, relp-tls

    @property
    def relp(self) -> bool:
        return self.transport.startswith("relp")

    @property
    def tls(self) -> bool:
        return self.transport.endswith("tls")

    def __str__(self) -> str:
        return f"{self.collector}-{self.transport}"


CASES = [Case("rsyslog", "tcp"), Case("rsyslog", "tls"), Case("rsyslog-relp", "relp"),
         Case("rsyslog-relp", "relp-tls"), Case("syslog-ng", "tcp"), Case("syslog-ng", "tls")]


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "pki").mkdir()
    out = make_certs(tmp_path / "pki")
    out["client_cert"], out["client_key"] = client_cert(tmp_path / "pki", out["ca"],
                                                        tmp_path / "pki" / "ca.key")
    return out


def _collector(case: Case, work: Path, certs: dict[str, Path]) -> Collector:
    if not os.access(RSYSLOGD, os.X_OK) and case.collector.startswith("rsyslog"):
        pytest.skip("rsyslog is not installed (ci/apt.d/audit.txt)")
    if case.collector == "rsyslog-relp":
        if not IMRELP.exists():
            pytest.skip("rsyslog-relp is not installed (ci/apt.d/audit.txt)")
        return rsyslog_relp(work, certs)
    if case.collector == "rsyslog":
        return rsyslog(work, certs)
    ng = syslog_ng()
    if ng is None:
        pytest.skip("syslog-ng-core could not be fetched (apt-get download)")
    return syslog_ng_collector(ng, work, certs)


@pytest.fixture(params=CASES, ids=str)
def running(request: pytest.FixtureRequest, tmp_path: Path,
            certs: dict[str, Path]) -> Iterator[tuple[Case, Collector]]:
    case: Case = request.param
    work = tmp_path / "collector"
    work.mkdir()
    collector = _collector(case, work, certs)
    collector.start()
    try:
        yield case, collector
    finally:
        collector.stop()


def _transport(case: Case, port: int, certs: dict[str, Path]) -> Transport:
    tls = {"ca_file": str(certs["ca"]), "server_name": "localhost"} if case.tls else {}
    if case.relp:
        client = {"cert_file": str(certs["client_cert"]),
                  "key_file": str(certs["client_key"])} if case.tls else {}
        return RelpTransport("127.0.0.1", port, tls=case.tls, **tls, **client)
    return SyslogTransport("127.0.0.1", port, tls=case.tls, **tls)


def _record(i: int) -> AuditRecord:
    return AuditRecord(action="scan-syn", message=f"probe {i} from 10.0.{i % 200}.7 — ünïcode",
                       kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
                       source=Endpoint(ip=f"10.0.{i % 200}.7"), rule_id="net-scan",
                       fields={"edgeguard.test.index": i})


def _wait(cond: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _local(log: Path) -> dict[int, bytes]:
    return {orjson.loads(x)["event"]["sequence"]: x
            for p in [*sorted(log.glob("audit-*.jsonl")), log / "audit.jsonl"]
            for x in p.read_bytes().splitlines()}


def test_receiver_stopped_mid_stream_loses_and_duplicates_nothing_undocumented(
        tmp_path: Path, running: tuple[Case, Collector], certs: dict[str, Path]) -> None:
    case, collector = running
    log = tmp_path / "log"
    writer = AuditWriter(log, clock=SystemClock(), host="kiosk-1", segment_size=256 * 1024,
                         fsync_interval=0.05)
    resend = 0 if case.relp else RESEND  # what remote_shippers() configures
    shipper = Shipper(log, _transport(case, collector.ports[case.transport], certs),
                      tmp_path / "cursors" / f"{case}.cursor", resend=resend,
                      reconnect_interval=0.2, settle=0.0 if case.relp else TCP_ACK_SETTLE)
    shipper.start()
    i = 0
    try:
        for i in range(800):
            writer.write(_record(i))
        writer.flush()
        before = writer.head[0]
        _wait(lambda: shipper.shipped_sequence >= before, "delivery before the outage", 60)
        cursor_at_stop = shipper.shipped_sequence
        collector.stop()
        outage_end = time.monotonic() + OUTAGE
        while time.monotonic() < outage_end:  # records keep coming while it is down
            for _ in range(50):
                i += 1
                writer.write(_record(i))
            time.sleep(0.2)
        writer.flush()
        _wait(lambda: bool(shipper.reports), "the shipper to say why it cannot deliver", 20)
        collector.start()
        for _ in range(400):
            i += 1
            writer.write(_record(i))
        writer.flush()
        last = writer.head[0]
        _wait(lambda: shipper.shipped_sequence >= last, "delivery after the outage", 90)
    finally:
        shipper.stop()
        writer.close()
    collector.stop()  # flushes its file
    chain = writer.chain_id
    keys = collector.keys()
    assert {c for c, _ in keys} == {chain}
    seqs = [s for _, s in keys]
    missing = sorted(set(range(1, last + 1)) - set(seqs))
    assert not missing, (str(case), cursor_at_stop, missing[:3], missing[-3:], len(missing))
    first_seen, seen, dups = [], set(), []
    for s in seqs:
        if s in seen:
            dups.append(s)
        else:
            seen.add(s)
            first_seen.append(s)
    assert first_seen == sorted(first_seen)  # in order of first arrival
    if case.relp:  # acknowledged per message: only what was sent and not yet answered
        assert all(s > cursor_at_stop for s in dups), (cursor_at_stop, dups[:5])
    else:  # TCP/TLS: only the documented window before the cursor
        assert all(cursor_at_stop - RESEND < s <= cursor_at_stop for s in dups), \
            (cursor_at_stop, dups[:5])
    local = _local(log)
    received = dict(zip(seqs, collector.lines(), strict=True))
    assert all(received[s] == local[s] for s in received)  # byte-identical after dedup
    # the outage was said, with its cause (refused: nothing listened on the port)
    assert {r.cause for r in shipper.reports} <= {FailureCause.REFUSED, FailureCause.RESET,
                                                  FailureCause.TLS}
    assert FailureCause.REFUSED in {r.cause for r in shipper.reports}
    assert shipper.failing_since is None  # and its end
    proc = run_edgeguard(["audit", "verify", "--against", str(collector.output), str(log)])
    assert proc.returncode == 0, proc.stdout


def test_examples_pass_the_collectors_own_syntax_check(tmp_path: Path,
                                                       certs: dict[str, Path]) -> None:
    """``rsyslogd -N1`` and ``syslog-ng --syntax-only`` accept the example configs as
    shipped (placeholders filled); the test above runs them."""
    common = {"CA_FILE": certs["ca"], "CERT_FILE": certs["cert"], "KEY_FILE": certs["key"],
              "OUTPUT": tmp_path / "out.jsonl", "ADDRESS": "127.0.0.1"}
    checked = 0
    if os.access(RSYSLOGD, os.X_OK):
        configs = {"rsyslog-edgeguard.conf": {"TCP_PORT": 10514, "TLS_PORT": 10515}}
        if IMRELP.exists():
            configs["rsyslog-relp-edgeguard.conf"] = {"RELP_PORT": 10516, "RELP_TLS_PORT": 10517}
        for name, ports in configs.items():
            conf = tmp_path / name
            conf.write_text(render(name, {**common, **ports, "WORKDIR": tmp_path}))
            proc = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True,
                                  text=True, check=False, timeout=60)
            assert proc.returncode == 0, proc.stderr
            checked += 1
    ng = syslog_ng()
    if ng is not None:
        conf = tmp_path / "syslog-ng.conf"
        conf.write_text(render("syslog-ng-edgeguard.conf",
                               {**common, "TCP_PORT": 10518, "TLS_PORT": 10519}))
        proc = subprocess.run(ng.argv("--syntax-only", "-f", str(conf)), env=ng.env(),
                              capture_output=True, text=True, check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        checked += 1
    if not checked:
        pytest.skip("neither rsyslog nor syslog-ng is available")
