"""Issue 16 §2 (writer half): opening a segment is all-or-nothing.

Before: ``_open_segment`` appended the new header (advancing sequence and head hash) and,
when the directory fsync then failed, unlinked the file without rolling the head back:
``verify`` reported ``segment-missing`` from there on, for good. An EMFILE at the open
left the record path "suspect". Now every failure during a rotation leaves the head as it
was; the records are held and written by the next try.

The test traces every system call a rotating ``write()`` makes (checkpoint, key
evolution, rename, open, header, directory fsync, ...) and then, for each of them and each
of EMFILE, ENFILE, EIO and ENOSPC, fails exactly that call once in a fresh log: the log
must verify with K0 afterwards and hold every record once, in order.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from audit_helpers import lines_of, sample_record, segments

from edgeguard.audit.keys import enrol, read_export
from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import ROOT

_CALLS = ("open", "close", "dup", "rename", "unlink", "stat", "write", "pwrite", "fsync",
          "fdatasync", "fchmod", "fchown", "ftruncate")
_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.EIO, errno.ENOSPC)
_RECORDS = 14


class Syscalls:
    """Wraps os calls made by the test's own thread: records them, or fails call ``fail_at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.trace: list[str] = []
        self.fail_at: int | None = None
        self.err = errno.EIO
        self.failed: str | None = None
        self._main = threading.current_thread()
        for name in _CALLS:
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            if self.armed and threading.current_thread() is self._main:
                index = len(self.trace)
                self.trace.append(name)
                if index == self.fail_at:
                    self.failed = name
                    raise OSError(self.err, os.strerror(self.err))
            return real(*args, **kw)
        return call


def _writer(tmp_path: Path, clock: FakeClock) -> AuditWriter:
    key_file = tmp_path / "state" / "audit.key"
    if not key_file.exists():
        key_file.parent.mkdir(mode=0o700, parents=True)
        enrol(key_file, tmp_path / "k0.key")
    return AuditWriter(tmp_path / "log", clock=clock, host="h", segment_size=1500,
                       fsync_interval=3600, checkpoint_interval=3600, retry_interval=1,
                       key_file=key_file)


def _run(tmp_path: Path, sys_: Syscalls, *, fail_at: int | None, err: int) -> AuditWriter:
    """Write records; arm the injector for the first write that rotates."""
    clock = FakeClock()
    writer = _writer(tmp_path, clock)
    armed_once = False
    for i in range(_RECORDS):
        rotating = writer.store.size >= writer.segment_size and not armed_once
        if rotating:
            armed_once = True
            sys_.trace, sys_.fail_at, sys_.err, sys_.armed = [], fail_at, err, True
        try:
            writer.write(sample_record(i))
        finally:
            sys_.armed = False
        if rotating and fail_at is not None:
            clock.advance(2)
            writer.tick()  # the retry (the sync thread would do it too)
    writer.close()
    assert armed_once
    return writer


def _check_log(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "log"
    result = verify_paths([log], key=read_export(tmp_path / "k0.key"))
    assert result.ok, result.problem
    assert not result.warnings
    recs = [orjson.loads(x) for p in segments(log) if p.exists() for x in lines_of(p)]
    indexes = [r["edgeguard"]["test"]["index"] for r in recs if "test" in r["edgeguard"]]
    assert indexes == list(range(_RECORDS))  # none lost, none twice, in order
    return recs


def _rotation_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sys_ = Syscalls(monkeypatch)
    _run(tmp_path / "trace", sys_, fail_at=None, err=0)
    return list(sys_.trace)


def test_trace_covers_every_step_of_a_rotation(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _rotation_steps(tmp_path, monkeypatch)
    # checkpoint (sync, key evolution in place, write, sync), rename, new file, header,
    # directory fsync, and the record itself
    for name in ("fdatasync", "pwrite", "rename", "open", "fchmod", "write", "fsync"):
        assert name in steps, steps
    assert len(steps) >= 15


@pytest.mark.parametrize("err", _ERRNOS, ids=[errno.errorcode[e] for e in _ERRNOS])
def test_a_fault_at_any_step_of_rotation_loses_nothing_and_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    steps = _rotation_steps(tmp_path, monkeypatch)
    sys_ = Syscalls(monkeypatch)
    covered: list[str] = []
    for index, name in enumerate(steps):
        case = tmp_path / f"case-{index}"
        writer = _run(case, sys_, fail_at=index, err=err)
        if sys_.failed is None:
            continue  # the call sequence changed before this step (e.g. an earlier retry)
        covered.append(f"{index}:{name}")
        recs = _check_log(case)
        io_errors = [r for r in recs if r["event"]["action"] == "audit-io-error"]
        # after the rotation's checkpoint (rename, new file, header, directory fsync)
        # even EIO only holds and retries; the record's own write may find EIO
        rotation_proper = steps.index("write") + 1 < index < len(steps) - 1
        if err in (errno.EMFILE, errno.ENFILE, errno.ENOSPC) or rotation_proper:
            assert not io_errors, f"{errno.errorcode[err]} at step {index} ({name}) " \
                "closed a segment as suspect"
        headers = [r["edgeguard"]["audit"]["reason"] for r in recs
                   if r["event"]["action"] == "audit-segment-start"]
        assert "rotation" in headers
        assert writer.queued == 0
    assert len(covered) == len(steps), (covered, steps)


_EXHAUST = r"""
import os, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from audit_helpers import sample_record
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
clock = FakeClock()
writer = AuditWriter(Path(sys.argv[1]), clock=clock, host="h", segment_size=1500,
                     fsync_interval=0.01, retry_interval=0.05)
for i in range(3):
    writer.write(sample_record(i))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
hog = []
try:
    while True:
        hog.append(os.open("/dev/null", os.O_RDONLY))
except OSError as exc:
    assert exc.errno == 24, exc
held = [writer.write(sample_record(i)) for i in range(3, 30)]  # rotates, runs out of fds
print("held", held.count(0), "errors", writer.write_errors, flush=True)
for fd in hog:
    os.close(fd)
clock.advance(5)
writer.tick()
writer.close()
print("queued", writer.queued)
"""


def test_really_exhausted_descriptors_during_rotation_hold_and_retry(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = subprocess.run([sys.executable, "-c", _EXHAUST, str(log), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    held = int(proc.stdout.split()[1])
    assert held > 0, proc.stdout  # the descriptors really ran out during a rotation
    assert "queued 0" in proc.stdout
    result = verify_paths([log])
    assert result.ok, result.problem
    recs = [orjson.loads(x) for p in segments(log) if p.exists() for x in lines_of(p)]
    assert [r["edgeguard"]["test"]["index"] for r in recs if "test" in r["edgeguard"]] \
        == list(range(30))
    assert not [r for r in recs if r["event"]["action"] == "audit-io-error"]
