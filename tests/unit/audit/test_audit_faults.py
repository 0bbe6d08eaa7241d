"""Disk trouble must never reach the decision path: ENOSPC holds and counts, EIO moves
to a new segment, retention prunes with a record the verifier understands."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import orjson
import pytest
from audit_helpers import lines_of, sample_record, segments

from edgeguard.audit import writer as writer_mod
from edgeguard.audit.aggregate import Aggregator
from edgeguard.audit.sink import MemorySink
from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.events import Decision, Endpoint, Finding, Mode, Severity
from tests.conftest import run_edgeguard
from tests.support.schema import validate_lines


class FailingWrites:
    """Make os.write in the writer fail with ``err`` while ``on`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, err: int) -> None:
        self.on = False
        self.err = err
        self.failed = 0
        real = os.write

        def write(fd: int, data: bytes | memoryview) -> int:
            if self.on:
                self.failed += 1
                raise OSError(self.err, os.strerror(self.err))
            return real(fd, data)

        monkeypatch.setattr(writer_mod.os, "write", write)


def _actions(log: Path) -> list[str]:
    return [orjson.loads(x)["event"]["action"] for p in segments(log) if p.exists()
            for x in lines_of(p)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


def test_enospc_holds_records_then_writes_them_and_the_exact_loss(
        monkeypatch: pytest.MonkeyPatch, log: Path, clock: FakeClock) -> None:
    disk = FailingWrites(monkeypatch, errno.ENOSPC)
    writer = AuditWriter(log, clock=clock, host="h", queue_limit=100, retry_interval=3600)
    writer.write(sample_record(0))
    disk.on = True
    results = [writer.write(sample_record(i)) for i in range(1, 251)]  # never raises
    assert results == [0] * 250
    assert writer.queued == 100
    assert writer.lost_total == 150
    disk.on = False
    writer.tick()  # space is back
    assert writer.queued == 0
    writer.close()
    actions = _actions(log)
    assert actions.count("scan-syn") == 101
    lost = [orjson.loads(x) for p in segments(log) for x in lines_of(p)
            if b'"audit-records-lost"' in x]
    assert [r["edgeguard"]["audit"]["lost"] for r in lost] == [150]
    assert verify_paths([log]).ok
    for path in segments(log):
        validate_lines(path.read_bytes(), records=True)


def test_eio_closes_the_segment_as_suspect_and_records_it(
        monkeypatch: pytest.MonkeyPatch, log: Path, clock: FakeClock) -> None:
    writer = AuditWriter(log, clock=clock, host="h")
    for i in range(3):
        writer.write(sample_record(i))
    real = os.write

    def once(fd: int, data: bytes | memoryview) -> int:  # fail one record, then recover
        monkeypatch.setattr(writer_mod.os, "write", real)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(writer_mod.os, "write", once)
    writer.write(sample_record(3))
    writer.write(sample_record(4))
    writer.close()
    recs = [orjson.loads(x) for p in segments(log) for x in lines_of(p)]
    headers = [r for r in recs if r["event"]["action"] == "audit-segment-start"]
    assert headers[-1]["edgeguard"]["audit"]["reason"] == "io-error"
    errors = [r for r in recs if r["event"]["action"] == "audit-io-error"]
    assert errors[0]["error"]["code"] == "EIO"
    for path in segments(log):
        validate_lines(path.read_bytes(), records=True)
    assert [r["edgeguard"]["test"]["index"] for r in recs if "test" in r.get("edgeguard", {})] \
        == [0, 1, 2, 3, 4]
    assert verify_paths([log]).ok


def test_retention_prunes_old_shipped_segments_and_verify_accepts_it(
        log: Path, clock: FakeClock) -> None:
    shipped = {"upto": 0}
    writer = AuditWriter(log, clock=clock, host="h", segment_size=1500, retention=3600,
                         shipped=lambda: shipped["upto"])
    for i in range(40):
        writer.write(sample_record(i))
    clock.advance(7200)
    writer.tick()
    assert writer.pruned == 0  # old enough, but nothing shipped yet
    shipped["upto"] = 25
    writer.tick()
    assert writer.pruned >= 2
    for i in range(5):
        writer.write(sample_record(100 + i))
    writer.close()
    result = verify_paths([log])
    assert result.ok, result.problem
    assert any("pruned by retention" in n for n in result.notes)
    pruned = [orjson.loads(x)["edgeguard"]["audit"] for p in segments(log) for x in lines_of(p)
              if b'"audit-segment-pruned"' in x]
    assert all(p["pruned_last_sequence"] <= 25 for p in pruned)
    # deleting the oldest remaining segment by hand is not pruning: it is reported
    sorted(log.glob("audit-*.jsonl"))[0].unlink()
    proc = run_edgeguard(["audit", "verify", str(log)])
    assert proc.returncode == 1
    assert "segment-missing" in proc.stdout


def _suppressed(i: int, ident: str = "10.0.0.7") -> Decision:
    finding = Finding(kind="scan", subtype="syn", message="probe", identifier=ident,
                      severity=Severity.MODERATE, source=Endpoint(ip=f"10.0.{i % 3}.7"),
                      first_seen=1000.0 + i, last_seen=1000.0 + i)
    return Decision(finding, "net-scan", Severity.MODERATE, Mode.ENFORCE, (), suppressed=True)


def test_aggregator_accounts_for_every_repeat(clock: FakeClock) -> None:
    sink = MemorySink()
    agg = Aggregator(sink, clock, window=60, max_keys=2)
    for i in range(1000):
        agg.add(_suppressed(i))
    agg.add(_suppressed(0, "b"))
    agg.add(_suppressed(0, "c"))  # a third key: the oldest is flushed early
    assert agg.early_flushes == 1
    assert agg.flush() == 0  # window not over
    clock.advance(61)
    assert agg.flush() == 2
    counts = {r.fields["edgeguard.finding.id"]: r.fields["edgeguard.repeats.count"]
              for r in sink.records}
    assert counts == {"10.0.0.7": 1000, "b": 1, "c": 1}
    first = sink.records[0]
    assert first.fields["edgeguard.repeats.sources"] == ("10.0.0.7", "10.0.1.7", "10.0.2.7")
    assert first.fields["event.start"] < first.fields["event.end"]  # type: ignore[operator]
    assert agg.summarised == agg.added == 1002
    assert agg.pending == 0
