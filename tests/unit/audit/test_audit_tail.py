"""``edgeguard audit tail``: newest records, human-readable or raw, and -f across rotations."""

from __future__ import annotations

import selectors
import subprocess
import time
from pathlib import Path

import orjson
from audit_helpers import LogFactory, sample_record

from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard


def test_tail_prints_the_last_n_records_across_segments(audit_log: LogFactory) -> None:
    log = audit_log(40)
    raw = run_edgeguard(["audit", "tail", "--json", "-n", "12", str(log)])
    assert raw.returncode == 0
    seqs = [orjson.loads(line)["event"]["sequence"] for line in raw.stdout.splitlines()]
    last = seqs[-1]
    assert seqs == list(range(last - 11, last + 1))
    human = run_edgeguard(["audit", "tail", "-n", "3", "--audit-dir", str(log)])
    lines = human.stdout.splitlines()
    assert len(lines) == 3
    assert lines[-1].split()[1] == f"#{last}"
    assert any("scan-syn" in line and "rule=net-scan" in line and "10.0.0." in line
               for line in lines) or lines[-1].split()[3] == "audit-checkpoint"


def test_tail_usage_errors(tmp_path: Path) -> None:
    assert run_edgeguard(["audit", "tail", str(tmp_path / "missing")]).returncode == 2
    assert run_edgeguard(["audit", "tail", "-n", "-1", str(tmp_path)]).returncode == 2


def _read_until(proc: subprocess.Popen[bytes], want: int, timeout: float) -> list[int]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seqs: list[int] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not seqs or seqs[-1] < want):
        if not sel.select(timeout=0.2):
            continue
        chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        seqs.extend(orjson.loads(line)["event"]["sequence"] for line in lines)
    return seqs


def test_tail_follow_crosses_rotations(tmp_path: Path) -> None:
    log = tmp_path / "log"
    clock = FakeClock()
    writer = AuditWriter(log, clock=clock, host="h", segment_size=1500)
    proc = subprocess.Popen(edgeguard_argv("audit", "tail", "-f", "--json", "-n", "0", str(log)),
                            stdout=subprocess.PIPE, env=edgeguard_env(), cwd=ROOT)
    try:
        time.sleep(1.0)  # let it open the active segment
        start = writer.head[0]
        for i in range(60):  # several rotations while it follows
            writer.write(sample_record(i))
            if i % 10 == 0:
                time.sleep(0.05)
        writer.flush()
        end = writer.head[0]
        seqs = _read_until(proc, end, timeout=20)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        writer.close()
    assert seqs == list(range(start + 1, end + 1))
    assert len(list(log.glob("audit-*.jsonl"))) >= 4
