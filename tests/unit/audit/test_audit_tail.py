"""``edgeguard audit tail``: newest records, human-readable or raw, and -f across rotations."""

from __future__ import annotations

import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from audit_helpers import LogFactory, sample_record

from edgeguard.audit import follow
from edgeguard.audit.writer import ACTIVE_NAME, AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard


def test_tail_prints_the_last_n_records_across_segments(audit_log: LogFactory) -> None:
    log = audit_log(40)
    raw = run_edgeguard(["audit", "tail", "--json", "-n", "12", str(log)])
    assert raw.returncode == 0
    seqs = [orjson.loads(line)["event"]["sequence"] for line in raw.stdout.splitlines()]
    last = seqs[-1]
    assert seqs == list(range(last - 11, last + 1))
    human = run_edgeguard(["audit", "tail", "--all", "-n", "3", "--audit-dir", str(log)])
    lines = human.stdout.splitlines()
    assert len(lines) == 3
    assert lines[-1].split()[1] == f"#{last}"
    assert any("scan-syn" in line and "rule=net-scan" in line and "10.0.0." in line
               for line in lines) or lines[-1].split()[3] == "audit-checkpoint"


def test_tail_usage_errors(tmp_path: Path) -> None:
    assert run_edgeguard(["audit", "tail", str(tmp_path / "missing")]).returncode == 2
    assert run_edgeguard(["audit", "tail", "-n", "-1", str(tmp_path)]).returncode == 2


def _wait_open(pid: int, path: Path, timeout: float = 30) -> None:
    """Until process ``pid`` holds ``path`` open (a fixed sleep loses on a busy host)."""
    fds = Path(f"/proc/{pid}/fd")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in fds.iterdir():
            try:
                if fd.resolve() == path.resolve():
                    return
            except OSError:
                continue  # closed meanwhile
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not open {path} within {timeout}s")


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
        _wait_open(proc.pid, log / ACTIVE_NAME)  # it follows from here on
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


class _RotateWhileOpening:
    """Wraps follow._next_segment: the first time it answers "the active segment", the
    writer rotates before the caller gets to open it. That is the window between looking
    and opening in which a follower used to skip whole segments (seen in CI under load)."""

    def __init__(self, writer: AuditWriter, real: Callable[[Path, int | None], Path]) -> None:
        self.writer, self.real, self.fired = writer, real, False

    def __call__(self, directory: Path, after: int | None) -> Path:
        path = self.real(directory, after)
        if path.name == ACTIVE_NAME and after is not None and not self.fired:
            self.fired = True
            first = self.writer.head[0]
            for i in range(12):  # at 1500 bytes a segment: at least two rotations
                self.writer.write(sample_record(1000 + i))
            self.writer.flush()
            assert len(list(directory.glob("audit-*.jsonl"))) >= 2, first
        return path


def test_follow_never_skips_a_segment_rotated_while_opening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log"
    writer = AuditWriter(log, clock=FakeClock(), host="h", segment_size=1500)
    hook = _RotateWhileOpening(writer, follow._next_segment)
    monkeypatch.setattr(follow, "_next_segment", hook)
    done = threading.Event()
    got: list[int] = []

    def run() -> None:
        for line in follow.follow_lines(log, poll=0.01, stop=done.is_set):
            got.append(orjson.loads(line)["event"]["sequence"])

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.3)  # the follower sits at the end of the active segment
        start = writer.head[0]
        for i in range(8):  # the first rotation; the hook causes more while it opens
            writer.write(sample_record(i))
        writer.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not got or got[-1] < writer.head[0]):
            time.sleep(0.02)
    finally:
        done.set()
        thread.join(timeout=10)
        writer.close()
    assert hook.fired
    assert got == list(range(start + 1, got[-1] + 1))
    assert got[-1] >= start + 20


def test_shipper_cursor_never_skips_a_segment_rotated_while_opening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log"
    writer = AuditWriter(log, clock=FakeClock(), host="h", segment_size=1500)
    start = writer.head[0]
    tail = follow.SegmentTail(log, start)
    hook = _RotateWhileOpening(writer, follow._next_segment)
    monkeypatch.setattr(follow, "_next_segment", hook)
    got: list[int] = []
    try:
        for i in range(8):
            writer.write(sample_record(i))
        writer.flush()
        for _ in range(200):
            got.extend(seq for seq, _line in tail.poll())
            if got and got[-1] >= writer.head[0]:
                break
    finally:
        tail.close()
        writer.close()
    assert hook.fired
    assert got == list(range(start + 1, got[-1] + 1))
    assert got[-1] >= start + 20
