"""Issue 16 §1: the old key is erased in place; trails from before time binding verify.

``data/legacy-trail`` was written by the writer of main before this change (checkpoints
without ``version``/``interval``/``started``, a one-line JSON key file at epoch 7) with
its K0 export: it must still verify, the new writer must continue it, and a legacy
checkpoint after a time-bound one (a downgrade) must be refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from audit_helpers import checkpoint_mac, lines_of, sample_record, segments

from edgeguard.audit.chain import canonical, chain_hash, strip_hash
from edgeguard.audit.keys import SLOT_BYTES, KeyStore, evolve, read_export
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import run_edgeguard

LEGACY = Path(__file__).parent / "data" / "legacy-trail"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    (copy / "audit.key").chmod(0o600)
    return copy


def _traces(key: bytes) -> list[bytes]:
    return [key, key.hex().encode()]


def _files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_evolving_erases_every_earlier_key_in_place(tmp_path: Path) -> None:
    key_file, export = tmp_path / "state" / "audit.key", tmp_path / "off-host" / "k0.key"
    export.parent.mkdir()
    proc = run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key_file)])
    assert proc.returncode == 0, proc.stderr
    k0 = read_export(export).k0
    inode = key_file.stat().st_ino
    store = KeyStore(key_file)
    earlier = [k0]
    for _ in range(5):
        store.seal({"x": 1})
        earlier.append(bytes(evolve(earlier[-1])))
        assert key_file.stat().st_ino == inode  # the same file: overwritten, not replaced
        assert key_file.stat().st_size == 2 * SLOT_BYTES
        blobs = [p.read_bytes() for p in _files_under(key_file.parent)]
        for old in earlier[:-1]:
            assert not any(t in blob for blob in blobs for t in _traces(old))
        assert any(earlier[-1].hex().encode() in blob for blob in blobs)
    store.close()
    assert bytes(KeyStore(key_file)._key) == earlier[-1]


def test_a_crash_between_new_key_and_erase_keeps_the_newer_and_erases_the_older(
        tmp_path: Path) -> None:
    key_file, export = tmp_path / "audit.key", tmp_path / "k0.key"
    assert run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key_file)]).returncode == 0
    k0 = read_export(export).k0
    store = KeyStore(key_file)
    store.seal({"x": 1})  # epoch 1 in slot 1, slot 0 blank
    k1 = bytes(evolve(k0))
    # as if killed after writing K(2) into slot 0 and before erasing slot 1
    from edgeguard.audit.keys import key_file_bytes  # noqa: PLC0415
    fd = os.open(key_file, os.O_WRONLY)
    os.pwrite(fd, key_file_bytes(store.key_id, 2, evolve(k1))[:SLOT_BYTES], 0)
    os.close(fd)
    again = KeyStore(key_file)
    assert again.epoch == 2
    assert k1.hex().encode() not in key_file.read_bytes()
    # a torn slot (power cut in the middle of a write) is ignored, never half-used
    data = bytearray(key_file.read_bytes())
    data[SLOT_BYTES:SLOT_BYTES + 40] = b'{"key_id":"' + b"x" * 29
    key_file.write_bytes(bytes(data))
    assert KeyStore(key_file).epoch == 2


def test_a_legacy_trail_verifies_and_is_reported_as_legacy(legacy: Path) -> None:
    proc = run_edgeguard(["audit", "verify", "--key", str(legacy / "k0.key"),
                          str(legacy / "log")])
    assert proc.returncode == 0, proc.stdout
    assert "7 checkpoints up to sequence" in proc.stdout
    assert "are legacy (written before time binding)" in proc.stdout


def _continue(legacy: Path) -> Path:
    clock = FakeClock(1_796_000_100)
    writer = AuditWriter(legacy / "log", clock=clock, host="kiosk-old", segment_size=3000,
                         key_file=legacy / "audit.key", checkpoint_records=5)
    for i in range(12):
        clock.advance(3)
        writer.write(sample_record(100 + i))
    writer.close()
    return legacy / "log"


def test_the_new_writer_continues_a_legacy_trail_and_key_file(legacy: Path) -> None:
    old_key = orjson.loads((legacy / "audit.key").read_bytes())["key"]
    log = _continue(legacy)
    assert old_key.encode() not in (legacy / "audit.key").read_bytes()
    proc = run_edgeguard(["audit", "verify", "--key", str(legacy / "k0.key"), str(log)])
    assert proc.returncode == 0, proc.stdout
    assert "are legacy" in proc.stdout
    versions = [orjson.loads(x)["edgeguard"]["checkpoint"].get("version")
                for p in segments(log) for x in lines_of(p) if b'"audit-checkpoint"' in x]
    assert versions[:7] == [None] * 7
    assert set(versions[7:]) == {2}


def test_a_downgrade_to_legacy_after_time_bound_checkpoints_is_refused(legacy: Path) -> None:
    """Even with the right key of that epoch (the strongest forger), a time-bound
    checkpoint rewritten as legacy, MAC and chain redone, is refused."""
    log = _continue(legacy)
    k0 = read_export(legacy / "k0.key").k0
    path = segments(log)[-1]
    records = [orjson.loads(x) for x in lines_of(path)]
    index = next(i for i, r in enumerate(records)
                 if r["event"]["action"] == "audit-checkpoint"
                 and r["edgeguard"]["checkpoint"].get("version") == 2
                 and not r["edgeguard"]["checkpoint"]["started"])
    cp = records[index]["edgeguard"]["checkpoint"]
    for name in ("version", "interval", "started"):
        del cp[name]
    key = bytearray(k0)
    for _ in range(cp["epoch"]):
        key = evolve(key)
    cp["mac"] = checkpoint_mac(bytes(key), records[index]["edgeguard"]["chain_id"], cp)
    prev = records[index - 1]["event"]["hash"]
    for rec in records[index:]:
        rec["event"]["hash"] = prev = chain_hash(prev, strip_hash(rec))
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    proc = run_edgeguard(["audit", "verify", "--key", str(legacy / "k0.key"), str(log)])
    assert proc.returncode == 1, proc.stdout
    seq = records[index]["event"]["sequence"]
    assert f"first bad sequence {seq}: checkpoint-downgrade:" in proc.stdout
