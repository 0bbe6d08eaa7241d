"""ENOSPC for real: the audit directory on a small loop-mounted ext4 that fills up during
a flood. Enforcement goes on, nothing raises, and once space returns the log verifies and
its loss record counts exactly the records that never reached the disk."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import SystemClock
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import ActionKind, ActionResult, Decision, Endpoint, Finding, Mode, Severity
from edgeguard.policy.load import load_policy

pytestmark = pytest.mark.linux

FLOOD = 6000


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    with image.open("wb") as fh:
        fh.truncate(8 * 1024 * 1024)
    subprocess.run(["/sbin/mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    loop = subprocess.run(["/sbin/losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    mnt.mkdir()
    try:
        subprocess.run(["/bin/mount", "-t", "ext4", loop, str(mnt)], check=True)
        try:
            yield mnt
        finally:
            subprocess.run(["/bin/umount", str(mnt)], check=False)
    finally:
        subprocess.run(["/sbin/losetup", "-d", loop], check=False)


def _fill(path: Path, leave: int) -> int:
    """Write a filler file until the filesystem has about ``leave`` bytes free."""
    written = 0
    with path.open("wb") as fh:
        chunk = b"\0" * 65536
        while True:
            st = os.statvfs(path.parent)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                fh.write(chunk[: max(4096, min(len(chunk), free - leave))])
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            written += 1
    return written


@dataclasses.dataclass
class CountingBlock:
    kind: ActionKind = ActionKind.BLOCK
    applied: int = 0

    def apply(self, decision: Decision) -> ActionResult:
        self.applied += 1
        return ActionResult(self.kind, ok=True)


def test_full_disk_during_a_flood_loses_nothing_silently(small_fs: Path,
                                                         tmp_path: Path) -> None:
    policy = dataclasses.replace(load_policy([]).policy, mode=Mode.ENFORCE)
    clock = SystemClock()
    writer = AuditWriter(small_fs / "log", clock=clock, host="kiosk", segment_size=256 * 1024,
                         queue_limit=500, retry_interval=0.05, fsync_interval=0.05)
    block = CountingBlock()
    pipeline = Pipeline(DecisionEngine(policy, clock), writer, actions={ActionKind.BLOCK: block})
    _fill(small_fs / "filler", leave=400 * 1024)
    for i in range(FLOOD):  # ~3 records per finding: alert + block action record
        finding = Finding(kind="scan", subtype="syn", message=f"probe {i}",
                          identifier=f"10.{i // 250}.{i % 250}.1", severity=Severity.SEVERE,
                          source=Endpoint(ip=f"10.{i // 250}.{i % 250}.1"))
        pipeline.submit(finding)
    assert block.applied == FLOOD  # enforcement never waited for the disk
    assert pipeline.audit_errors == 0  # nothing raised into the pipeline
    assert writer.lost_total > 0, "the filesystem did not fill: the test proves nothing"
    attempted = writer.records_written + writer.queued + writer.lost_total
    (small_fs / "filler").unlink()  # space returns
    writer.tick()
    assert writer.queued == 0
    writer.close()
    records = [orjson.loads(line) for p in sorted((small_fs / "log").glob("audit*.jsonl"))
               for line in p.read_bytes().splitlines()]
    flood_records = [r for r in records if r["event"]["action"] in ("scan-syn", "block")]
    expected_lost = 2 * FLOOD - len(flood_records)  # counted here, not taken from the writer
    losses = [r["edgeguard"]["audit"]["lost"] for r in records
              if r["event"]["action"] == "audit-records-lost"]
    assert sum(losses) == expected_lost == writer.lost_total
    assert attempted >= 2 * FLOOD
    result = verify_paths([small_fs / "log"])
    assert result.ok, result.problem
