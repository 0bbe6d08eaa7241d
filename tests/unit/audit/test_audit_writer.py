"""The writer across restarts and crashes: the chain always continues and verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from audit_helpers import LogFactory, lines_of, sample_record, segments, write_log

from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import ACTIVE_NAME, AuditWriter, segment_name
from edgeguard.clock import FakeClock
from edgeguard.events import AuditRecord
from tests.conftest import ROOT, edgeguard_env, run_edgeguard

CRASH_SCRIPT = """
import sys
from pathlib import Path
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import SystemClock
from edgeguard.events import AuditRecord
w = AuditWriter(Path(sys.argv[1]), clock=SystemClock(), host="crash",
                segment_size=int(sys.argv[2]), fsync_interval=0.01)
i = 0
while i < 2_000_000:
    w.write(AuditRecord(action="flood", message=f"record {i} " + "x" * (i % 97)))
    i += 1
    if i == 200:
        print("ready", flush=True)
"""


def _all_records(log: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for p in segments(log) if p.exists() for line in lines_of(p)
            if line.endswith(b"\n")]


def _seqs(log: Path) -> list[int]:
    return [r["event"]["sequence"] for r in _all_records(log)]  # type: ignore[index]


def test_restart_continues_the_chain(audit_log: LogFactory) -> None:
    log = audit_log(20)
    before = verify_paths([log])
    write_log(log, 15)
    after = verify_paths([log])
    assert after.ok, after.problem
    assert after.chain_id == before.chain_id
    assert after.last_sequence is not None
    assert before.last_sequence is not None
    assert after.last_sequence >= before.last_sequence + 15
    assert _seqs(log) == list(range(1, after.last_sequence + 1))


def test_file_modes_and_header(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", 10, file_mode=0o640)
    for path in segments(log):
        assert path.stat().st_mode & 0o777 == 0o640
    first = orjson.loads(lines_of(segments(log)[0])[0])
    assert first["event"]["action"] == "audit-segment-start"
    assert first["edgeguard"]["audit"]["previous_sequence"] == 0


@pytest.mark.parametrize("segment_size", [600, 1 << 20], ids=["rotating", "one-segment"])
def test_sigkill_mid_stream_leaves_a_verifiable_log(tmp_path: Path, segment_size: int) -> None:
    log = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(log), str(segment_size)],
                            stdout=subprocess.PIPE, env=edgeguard_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    killed = verify_paths([log])
    assert killed.ok, killed.problem
    assert killed.last_sequence is not None
    assert killed.last_sequence >= 200
    cli = run_edgeguard(["audit", "verify", str(log)])
    assert cli.returncode == 0, cli.stdout
    write_log(log, 5, segment_size=segment_size)
    again = verify_paths([log])
    assert again.ok, again.problem
    assert again.chain_id == killed.chain_id
    assert _seqs(log) == list(range(1, (again.last_sequence or 0) + 1))


def test_kill_between_rotation_rename_and_new_segment(audit_log: LogFactory) -> None:
    """The two windows of a rotation: renamed but no new file; new file but no header."""
    log = audit_log(20)
    head = verify_paths([log])
    first = orjson.loads(lines_of(log / ACTIVE_NAME)[0])["event"]["sequence"]
    os.rename(log / ACTIVE_NAME, log / segment_name(first))
    write_log(log, 3)
    assert verify_paths([log]).ok
    first = orjson.loads(lines_of(log / ACTIVE_NAME)[0])["event"]["sequence"]
    os.rename(log / ACTIVE_NAME, log / segment_name(first))
    (log / ACTIVE_NAME).touch()  # created, killed before the header was written
    write_log(log, 3)
    result = verify_paths([log])
    assert result.ok, result.problem
    assert result.chain_id == head.chain_id


def test_power_cut_half_record_is_acknowledged_by_next_start(audit_log: LogFactory) -> None:
    log = audit_log(10)
    with (log / ACTIVE_NAME).open("ab") as fh:
        fh.write(b'{"event":{"sequence":99')  # a record the disk only half kept
    broken = run_edgeguard(["audit", "verify", str(log)])
    assert broken.returncode == 1
    assert "truncated" in broken.stdout
    write_log(log, 3)
    result = verify_paths([log])
    assert result.ok, result.problem
    unclean = [r["edgeguard"]["audit"] for r in _all_records(log)  # type: ignore[index]
               if r["event"]["action"] == "audit-segment-start"  # type: ignore[index]
               and r["edgeguard"]["audit"]["reason"] == "unclean-shutdown"]  # type: ignore[index]
    assert [u["unclean_tail_bytes"] for u in unclean] == [23]


def test_unrenderable_record_leaves_a_trace_not_an_exception(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path / "log", clock=FakeClock(), host="h")
    try:
        writer.write(AuditRecord(action="bad", message="x",
                                 fields={"a": 1, "a.b": 2}))  # "a" is both leaf and object
        writer.write(AuditRecord(action="bad", message="\ud800"))  # lone surrogate
        writer.write(sample_record(1))
    finally:
        writer.close()
    assert writer.unrenderable == 2
    actions = [r["event"]["action"] for r in _all_records(tmp_path / "log")]  # type: ignore[index]
    assert actions == ["audit-segment-start", "audit-record-unrenderable",
                       "audit-record-unrenderable", "scan-syn", "audit-checkpoint"]
    assert verify_paths([tmp_path / "log"]).ok


def test_damaged_active_segment_is_set_aside_and_named(audit_log: LogFactory) -> None:
    log = audit_log(20)
    active = log / ACTIVE_NAME
    active.write_bytes(active.read_bytes() + b"this is not a record\n")
    write_log(log, 3)
    aside = list(log.glob("audit.jsonl.damaged-*"))
    assert len(aside) == 1  # kept for a human, never deleted
    header = orjson.loads(lines_of(log / ACTIVE_NAME)[0])
    named = [orjson.loads(x)["edgeguard"]["audit"].get("set_aside")
             for p in segments(log) for x in lines_of(p)
             if b'"audit-segment-start"' in x]
    assert aside[0].name in named
    assert header["event"]["action"] == "audit-segment-start"
    assert verify_paths([log]).ok
