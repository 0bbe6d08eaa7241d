"""Shipping that says when it fails (issue 22): each failure is classified, reported
(logged, audited) once per cause and window, written next to the cursor for
``status``, and shipping resumes from the cursor when the receiver is back. A closed
loopback port stands in for a receiver that is down; nothing leaves loopback."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from audit_helpers import sample_record, write_log
from structlog.testing import capture_logs
from test_audit_shipd import Receiver

from edgeguard.audit.follow import SegmentTail
from edgeguard.audit.segments import read_head
from edgeguard.audit.service import AuditService, remote_cursors
from edgeguard.audit.shipper import TCP_ACK_SETTLE, Cursor, Shipper
from edgeguard.audit.shipstate import (
    FailureCause,
    FailureWindow,
    ProtocolError,
    ShipperState,
    classify,
    state_path,
)
from edgeguard.audit.syslog import SyslogTransport
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.policy.load import load_policy
from tests.conftest import edgeguard_argv, edgeguard_env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens: connecting is refused


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(("exc", "cause"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), FailureCause.REFUSED),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), FailureCause.TLS),
    (ssl.SSLEOFError(8, "EOF in violation of protocol"), FailureCause.TLS),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), FailureCause.NAME_LOOKUP),
    (TimeoutError("timed out"), FailureCause.TIMEOUT),
    (ConnectionResetError(errno.ECONNRESET, "reset"), FailureCause.RESET),
    (BrokenPipeError(errno.EPIPE, "broken pipe"), FailureCause.RESET),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), FailureCause.UNREACHABLE),
    (ProtocolError("rsp 500"), FailureCause.PROTOCOL),
    (OSError(errno.EIO, "I/O error"), FailureCause.OTHER),
])
def test_failures_are_classified_by_cause(exc: OSError, cause: FailureCause) -> None:
    assert classify(exc) is cause


def test_a_cause_is_reported_once_per_window() -> None:
    window = FailureWindow(600)
    assert window.due(FailureCause.REFUSED, 0.0)
    assert not window.due(FailureCause.REFUSED, 599.0)
    assert window.due(FailureCause.TLS, 1.0)  # another cause: reported at once
    assert window.due(FailureCause.REFUSED, 600.0)


def test_receiver_down_is_reported_once_then_recovery_resumes_from_the_cursor(
        tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", 20)
    port = _closed_port()
    cursor = tmp_path / "cursors" / "syslog-tcp.cursor"
    shipper = Shipper(log, SyslogTransport("127.0.0.1", port, tls=False), cursor,
                      resend=0, reconnect_interval=0.02, report_window=600)
    shipper.start()
    try:
        head = read_head(log)
        assert head is not None
        _wait(lambda: shipper.errors >= 10, "ten refused attempts")
        assert len(shipper.reports) == 1  # ten failures, one report
        report = shipper.reports[0]
        assert report.cause is FailureCause.REFUSED
        assert "refused" in report.error.lower()
        state = ShipperState.load(state_path(cursor), "syslog-tcp")
        assert state.cause == "refused"
        assert state.since == report.since
        assert state.reports == 1
        assert Cursor.load(cursor).sequence == 0
        receiver = Receiver(port)  # the receiver comes back on the same port
        try:
            _wait(lambda: Cursor.load(cursor).sequence >= head.sequence,
                  "delivery after recovery")
            _wait(lambda: ShipperState.load(state_path(cursor), "x").cause is None,
                  "recovery in the state file")
        finally:
            receiver.close()
    finally:
        shipper.stop()
    assert receiver.sequences == list(range(1, head.sequence + 1))  # from the cursor, in order
    assert shipper.last_error == ""
    assert shipper.failing_since is None


def test_daemon_audits_and_shows_the_ship_process_failure(tmp_path: Path) -> None:
    """``run --no-remote-shipping``: the failure the separate shipper wrote next to its
    cursor is in ``audit.status`` and audited once (not again on the next tick)."""
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(f"""audit:
  shipping:
    cursor_directory: {tmp_path / 'cursors'}
    syslog: {{enabled: true, host: 127.0.0.1, port: 9, tls: false}}
""")
    policy = load_policy([policy_file]).policy
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    service = AuditService(policy)
    state_file = state_path(remote_cursors(policy.audit.shipping)["syslog-tcp"])
    ShipperState("syslog-tcp", "tls", "SSLCertVerificationError: certificate verify failed",
                 1_700_000_000.0, 3, 1, 1_700_000_001.0).save(state_file)

    async def run() -> tuple[int, int, dict[str, object]]:
        loop = asyncio.get_running_loop()
        ctx = Context(loop=loop, clock=clock, audit=writer, policy=policy,
                      state_dir=tmp_path, submit=lambda f, s: None,  # type: ignore[arg-type,return-value]
                      ship_remote=False)
        service.start(ctx)
        first, second = service.audit_failures(), service.audit_failures()
        status = await service.commands()["audit.status"](Peer(1, 0, 0), {})
        status["degraded"] = dict(service.problems())  # what `edgeguard status` shows
        service.stop()
        return first, second, status

    first, second, status = asyncio.run(run())
    writer.close()
    assert (first, second) == (1, 0)
    shown = status["shippers"][0]  # type: ignore[index]
    assert shown["cause"] == "tls"
    assert "verify failed" in shown["last_error"]
    assert shown["failing_since"] == 1_700_000_000.0
    assert status["degraded"] == {"audit.shipping.syslog-tcp": (
        "tls since 2023-11-14T22:13:20Z: SSLCertVerificationError: certificate verify failed;"
        " retrying from cursor 0")}
    records = [orjson.loads(x) for x in (tmp_path / "log" / "audit.jsonl").read_bytes()
               .splitlines()]
    failed = [r for r in records if r["event"]["action"] == "audit-shipping-failed"]
    assert len(failed) == 1
    assert failed[0]["event"]["outcome"] == "failure"
    assert failed[0]["edgeguard"]["shipping"]["cause"] == "tls"


def test_in_process_shipper_failures_are_audited(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    writer.write(sample_record(1))
    service = AuditService(load_policy([]).policy)
    service.writer = writer
    shipper = Shipper(writer.directory, SyslogTransport("127.0.0.1", _closed_port(), tls=False),
                      tmp_path / "c" / "syslog-tcp.cursor", reconnect_interval=0.02)
    service.shippers = [shipper]
    shipper.start()
    try:
        _wait(lambda: shipper.errors >= 3, "refused attempts")
    finally:
        shipper.stop()
    assert service.audit_failures() == 1
    assert service.audit_failures() == 0
    writer.close()


def test_ship_once_to_a_closed_port_says_why_and_fails(tmp_path: Path) -> None:
    """Old main: ``audit ship`` to a closed port printed nothing."""
    log = write_log(tmp_path / "log", 5)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"""audit:
  shipping:
    cursor_directory: {tmp_path / 'cursors'}
    syslog: {{enabled: true, host: 127.0.0.1, port: {_closed_port()}, tls: false}}
""")
    proc = subprocess.run(
        edgeguard_argv("audit", "ship", "--once", "--policy", str(policy), "--audit-dir",
                       str(log)),
        env=edgeguard_env(), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "syslog-tcp failed (refused)" in proc.stderr
    state = ShipperState.load(tmp_path / "cursors" / "syslog-tcp.state", "syslog-tcp")
    assert state.cause == "refused"


def test_ship_once_delivers_and_exits_zero(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", 12)
    receiver = Receiver()
    try:
        policy = tmp_path / "p.yaml"
        policy.write_text(f"""audit:
  shipping:
    cursor_directory: {tmp_path / 'cursors'}
    syslog: {{enabled: true, host: 127.0.0.1, port: {receiver.port}, tls: false}}
""")
        proc = subprocess.run(
            edgeguard_argv("audit", "ship", "--once", "--policy", str(policy), "--audit-dir",
                           str(log)),
            env=edgeguard_env(), capture_output=True, text=True, timeout=60, check=False)
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    head = read_head(log)
    assert head is not None
    assert Cursor.load(tmp_path / "cursors" / "syslog-tcp.cursor").sequence == head.sequence
    assert set(range(1, head.sequence + 1)) <= set(receiver.sequences)


def test_tail_reads_the_rotation_checkpoint_written_between_its_read_and_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the collector tests (one record missing at rsyslog, ~1 run in 10): the
    writer appends its rotation checkpoint to the old segment and renames it; a tail that
    had just read to the old end saw the rename and moved on, skipping that record."""
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h", segment_size=4096)
    while not list((tmp_path / "log").glob("audit-*.jsonl")):  # fill to the first rotation
        writer.write(sample_record(1))
    while not writer.store.full(writer.chain.sequence):  # the next write rotates
        writer.write(sample_record(2))
    tail = SegmentTail(writer.directory, 0)
    got = tail.poll(100_000)
    assert tail.poll(100) == []  # at the end of the active segment
    moved_on = SegmentTail._moved_on
    state = {"rotated": False}

    def rotate_first(self: SegmentTail) -> bool:
        if not state["rotated"]:  # the writer runs between the tail's read and this check
            state["rotated"] = True
            writer.write(sample_record(3))
        return moved_on(self)

    monkeypatch.setattr(SegmentTail, "_moved_on", rotate_first)
    got += tail.poll(100_000)
    writer.close()
    got += tail.poll(100_000)
    tail.close()
    assert state["rotated"]
    seqs = [s for s, _ in got]
    assert seqs == list(range(1, writer.head[0] + 1))  # the checkpoint too, nothing skipped


class DiesWithUnreadData(Receiver):
    """The first connection's bytes are acknowledged by the kernel but never read: the
    receiver 'exits' 0.3 s later (a reset, as rsyslog stopped mid-stream does); later
    connections are read normally."""

    def _serve(self) -> None:
        first, _ = self.server.accept()
        time.sleep(0.3)
        first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()  # unread data: RST
        super()._serve()


def test_a_kernel_ack_counts_only_once_it_stood_for_the_settle_time(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", 400, segment_size=1 << 20)
    head = read_head(log)
    assert head is not None
    rx = DiesWithUnreadData()
    shipper = Shipper(log, SyslogTransport("127.0.0.1", rx.port, tls=False),
                      tmp_path / "c" / "syslog-tcp.cursor", resend=10,
                      reconnect_interval=0.1, settle=TCP_ACK_SETTLE)
    shipper.start()
    try:
        _wait(lambda: shipper.shipped_sequence >= head.sequence and shipper.reconnects >= 2,
              "delivery over the second connection", 20)
        time.sleep(0.5)
    finally:
        shipper.stop()
        rx.close()
    # the reset came within the settle time: the cursor had not passed the unread records
    assert set(range(1, head.sequence + 1)) <= set(rx.sequences)


def test_ship_service_keeps_retrying_and_logs_the_cause_once(tmp_path: Path) -> None:
    """As a service (no --once) it does not exit: the reason is on stderr, once per cause
    and window, however many attempts fail, and in the state file for status."""
    log = write_log(tmp_path / "log", 5)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"""audit:
  shipping:
    cursor_directory: {tmp_path / 'cursors'}
    syslog: {{enabled: true, host: 127.0.0.1, port: {_closed_port()}, tls: false,
              reconnect_interval: 100ms}}
""")
    state_file = tmp_path / "cursors" / "syslog-tcp.state"
    proc = subprocess.Popen(
        edgeguard_argv("audit", "ship", "--policy", str(policy), "--audit-dir", str(log)),
        env=edgeguard_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: ShipperState.load(state_file, "x").cause == "refused", "the state file")
        time.sleep(1.0)  # ~10 more refused attempts
        assert proc.poll() is None  # still running, retrying
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert err.count("audit shipping failed") == 1, err
    assert "cause=refused" in err


def _external_service(tmp_path: Path) -> tuple[AuditService, AuditWriter, Path, Context]:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(f"""audit:
  shipping:
    cursor_directory: {tmp_path / 'cursors'}
    syslog: {{enabled: true, host: 127.0.0.1, port: 9, tls: false}}
""")
    policy = load_policy([policy_file]).policy
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    service = AuditService(policy)
    state_file = state_path(remote_cursors(policy.audit.shipping)["syslog-tcp"])
    ctx = Context(loop=asyncio.new_event_loop(), clock=clock, audit=writer, policy=policy,
                  state_dir=tmp_path, submit=lambda f, s: None,  # type: ignore[arg-type,return-value]
                  ship_remote=False)
    return service, writer, state_file, ctx


@pytest.mark.parametrize("doc", [
    b'{"cause": "gremlins", "since": "yesterday", "failures": "x", "reports": 2}',
    b'{"cause": ["tls"], "since": null}',
    b"\x00not json",
    b'["tls"]',
], ids=["unknown-cause", "cause-not-a-string", "not-json", "not-an-object"])
def test_a_damaged_state_file_is_a_failure_of_cause_other_and_still_audited(
        tmp_path: Path, doc: bytes) -> None:
    """Another process writes the state file: whatever is in it, the daemon audits the
    failure (cause ``other``), shows it, and logs the repair once."""
    service, writer, state_file, ctx = _external_service(tmp_path)
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(doc)
    state = ShipperState.load(state_file, "syslog-tcp")
    assert state.cause == FailureCause.OTHER.value
    assert state.since == state_file.stat().st_mtime  # not a number: the file's time
    assert state.damage
    service.start(ctx)
    try:
        with capture_logs() as logs:
            assert service.audit_failures() == 1  # was: ValueError in the executor
            assert service.audit_failures() == 0
            assert list(service.problems()) == ["audit.shipping.syslog-tcp"]
        repaired = [e for e in logs if e["event"] == "shipper state file repaired on reading"]
        assert len(repaired) == 1
    finally:
        service.stop()
        ctx.loop.close()
        writer.close()


def test_a_failing_failure_audit_neither_skips_the_writer_tick_nor_goes_unlogged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service, writer, _, ctx = _external_service(tmp_path)
    ticks: list[int] = []

    def broken() -> int:
        raise RuntimeError("boom")

    service.start(ctx)
    monkeypatch.setattr(service, "audit_failures", broken)
    monkeypatch.setattr(writer, "tick", lambda: ticks.append(1))

    async def one_tick() -> None:
        service._loop = asyncio.get_running_loop()
        service._tick()
        assert service._pending is not None
        with pytest.raises(RuntimeError):
            await service._pending
        await asyncio.sleep(0)  # the done callback runs

    try:
        with capture_logs() as logs:
            ctx.loop.run_until_complete(one_tick())
        assert ticks == [1]  # the checkpoint/prune tick ran regardless
        failed = [e for e in logs if e["event"] == "audit housekeeping failed"]
        assert len(failed) == 1
        assert "boom" in failed[0]["error"]
    finally:
        if service._timer is not None:
            service._timer.cancel()
        service._timer = None
        monkeypatch.undo()
        service.stop()
        ctx.loop.close()
        writer.close()
