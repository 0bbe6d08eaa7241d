"""Shipping without a real receiver: framing, the cursor across a restart, the docs'
rsyslog config being the tested one, and the audit component's wiring."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import orjson
from audit_helpers import sample_record

from edgeguard.audit.follow import SegmentTail
from edgeguard.audit.service import AuditService
from edgeguard.audit.shipper import Cursor, Shipper
from edgeguard.audit.syslog import SD_ID, SyslogTransport, format_message
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.policy.load import load_policy
from tests.conftest import ROOT


class Receiver:
    """A loopback TCP server that parses RFC 6587 octet-counted frames."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = b""
            with conn:
                while chunk := conn.recv(65536):
                    buf += chunk
                    while b" " in buf:
                        size, _, rest = buf.partition(b" ")
                        if len(rest) < int(size):
                            break
                        self.messages.append(rest[: int(size)])
                        buf = rest[int(size):]

    def seqs(self) -> list[int]:
        return [orjson.loads(m[m.index(b"{"):])["event"]["sequence"] for m in self.messages]

    def close(self) -> None:
        self.sock.close()


def _wait(cond: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():  # type: ignore[operator]
        time.sleep(0.05)


def test_rfc5424_message_carries_chain_and_sequence() -> None:
    rec = {"@timestamp": "2026-11-23T08:00:00.000000Z", "host": {"name": "kiosk 1"},
           "event": {"action": "scan-syn", "sequence": 7, "hash": "ab", "kind": "alert",
                     "severity": 3},
           "edgeguard": {"chain_id": 'c"]'}}
    msg = format_message(b'{"x":1}', rec)
    assert msg.startswith(b"<106>1 2026-11-23T08:00:00.000000Z kiosk1 edgeguard - scan-syn ")
    assert f'[{SD_ID} chain="c\\"\\]" seq="7" hash="ab"]'.encode() in msg
    assert msg.endswith(b' {"x":1}')


def test_shipper_resumes_from_its_cursor_after_a_restart(tmp_path: Path) -> None:
    log, cursor = tmp_path / "log", tmp_path / "tcp.cursor"
    writer = AuditWriter(log, clock=FakeClock(), host="h", segment_size=4000)
    rx = Receiver()
    try:
        for i in range(50):
            writer.write(sample_record(i))
        first = Shipper(log, SyslogTransport("127.0.0.1", rx.port, tls=False), cursor,
                        resend=5, reconnect_interval=0.1)
        first.start()
        head = writer.head[0]
        _wait(lambda: first.shipped_sequence >= head)
        first.stop()
        assert Cursor.load(cursor).sequence == head
        for i in range(50, 80):  # written while no shipper runs
            writer.write(sample_record(i))
        second = Shipper(log, SyslogTransport("127.0.0.1", rx.port, tls=False), cursor,
                         resend=5, reconnect_interval=0.1)
        second.start()
        last = writer.head[0]
        _wait(lambda: second.shipped_sequence >= last)
        second.stop()
    finally:
        writer.close()
        rx.close()
    seqs = rx.seqs()
    assert sorted(set(seqs)) == list(range(1, last + 1))
    dups = [s for s in set(seqs) if seqs.count(s) > 1]
    assert sorted(dups) == list(range(head - 4, head + 1))  # exactly the resend window


def test_segment_tail_reads_by_sequence_across_rotations(tmp_path: Path) -> None:
    log = tmp_path / "log"
    writer = AuditWriter(log, clock=FakeClock(), host="h", segment_size=1500)
    for i in range(40):
        writer.write(sample_record(i))
    tail = SegmentTail(log, 17)
    got = [seq for seq, _line in tail.poll(10_000)]
    for i in range(5):
        writer.write(sample_record(100 + i))
    got += [seq for seq, _line in tail.poll(10_000)]
    tail.close()
    writer.close()
    assert got == list(range(18, writer.head[0] + 1 - 1))  # the close checkpoint comes later


def test_docs_show_the_rsyslog_config_the_tests_run() -> None:
    conf = (ROOT / "docs" / "examples" / "rsyslog-edgeguard.conf").read_text()
    doc = (ROOT / "docs" / "shipping.md").read_text()
    for line in conf.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert line in doc, line


def test_audit_component_ticks_the_writer_and_reports(tmp_path: Path) -> None:
    policy = load_policy([]).policy
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    service = AuditService(policy)

    async def run() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        ctx = Context(loop=loop, clock=clock, audit=writer, policy=policy,
                      state_dir=tmp_path, submit=lambda f, s: None)  # type: ignore[arg-type,return-value]
        service.start(ctx)
        writer.write(sample_record(1))
        clock.advance(61)
        await asyncio.sleep(1.3)  # one tick: the interval checkpoint, though idle
        status: dict[str, object] = await service.commands()["audit.status"](Peer(1, 0, 0), {})
        service.stop()
        return status

    status = asyncio.run(run())
    writer.close()
    assert status["checkpoints"] == 1
    assert status["event.sequence"] == writer.head[0] - 1  # before the shutdown checkpoint
    assert status["shippers"] == []
    assert writer.retention == policy.audit.retention
    assert service.counters()["ticks"] >= 1
