"""Issue 16 §1: root after the fact, holding the key file, tries to re-seal the trail.

Both attacks from the red-team report, done exactly as described, against a trail the
real writer sealed: the intruder reads K(E) from the daemon's key file, then

1. edits record #2, re-hashes the chain after it and re-MACs every checkpoint with K(E),
   K(E+1), ... under new epoch numbers;
2. deletes the whole trail and starts a new one with the stolen key file.

``edgeguard audit verify --key K0`` said ``ok`` to both before the fix.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from edgeguard.audit.chain import canonical, chain_hash, strip_hash
from edgeguard.audit.keys import evolve
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import run_edgeguard
from tests.unit.audit.audit_helpers import checkpoint_mac, lines_of, sample_record, segments


def _sealed_trail(log: Path, key_file: Path, clock: FakeClock, count: int = 40) -> None:
    writer = AuditWriter(log, clock=clock, host="kiosk-1", segment_size=4000,
                         key_file=key_file, checkpoint_records=6)
    for i in range(count):
        clock.advance(2)
        writer.write(sample_record(i))
    writer.close()


def _stolen_key(key_file: Path) -> tuple[bytes, int]:
    """What the intruder reads from the key file: the newest key and its epoch."""
    data = key_file.read_bytes()
    for chunk in data.split(b"\n"):
        if chunk.strip():
            doc = orjson.loads(chunk)
            return bytes.fromhex(doc["key"]), int(doc["epoch"])
    raise AssertionError("no key in the key file")


def _verify(export: Path, log: Path) -> tuple[int, str]:
    proc = run_edgeguard(["audit", "verify", "--key", str(export), str(log)])
    return proc.returncode, proc.stdout


def test_edit_rehash_and_reseal_forward_with_the_stolen_key_is_refused(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    log = tmp_path / "log"
    _sealed_trail(log, key_file, FakeClock())
    assert _verify(export, log)[0] == 0
    stolen, epoch = _stolen_key(key_file)
    assert epoch > 3  # the trail holds several sealed checkpoints

    files = [p for p in segments(log) if p.exists()]
    per_file = [[orjson.loads(x) for x in lines_of(p)] for p in files]
    prev, key, first_forged = "0" * 64, bytearray(stolen), None
    for records in per_file:
        for rec in records:
            seq = rec["event"]["sequence"]
            if seq == 2:
                rec["message"] = "nothing happened"
            audit = rec.get("edgeguard", {}).get("audit", {})
            if "previous_hash" in audit:
                audit["previous_hash"] = prev
            cp = rec.get("edgeguard", {}).get("checkpoint")
            if cp is not None and seq > 2:
                cp["head_hash"] = prev
                cp["epoch"] = epoch
                cp["mac"] = checkpoint_mac(bytes(key), rec["edgeguard"]["chain_id"], cp)
                key, epoch = evolve(key), epoch + 1
                first_forged = first_forged or seq
            rec["event"]["hash"] = prev = chain_hash(prev, strip_hash(rec))
    for path, records in zip(files, per_file, strict=True):
        path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))

    code, out = _verify(export, log)
    assert code == 1, out
    assert f"BROKEN: first bad sequence {first_forged}: checkpoint-epoch: the first sealed " \
        "checkpoint has epoch" in out
    assert "not 0" in out
    assert run_edgeguard(["audit", "verify", str(log)]).returncode == 0  # the chain alone holds


def test_delete_the_trail_and_restart_with_the_stolen_key_is_refused(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    log = tmp_path / "log"
    clock = FakeClock()
    _sealed_trail(log, key_file, clock)
    for path in log.iterdir():
        path.unlink()
    _sealed_trail(log, key_file, clock, count=20)  # the daemon restarted on the stolen key
    assert run_edgeguard(["audit", "verify", str(log)]).returncode == 0
    code, out = _verify(export, log)
    assert code == 1, out
    assert "checkpoint-epoch: the first sealed checkpoint has epoch" in out


def test_a_crash_while_sealing_loses_one_epoch_and_verify_names_it(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    """The honest case the gap rule exists for: the key evolved, the checkpoint never
    reached the disk (killed between the two); the next start's checkpoint says so."""
    key_file, export = enrolled
    log = tmp_path / "log"
    clock = FakeClock()
    _sealed_trail(log, key_file, clock, count=10)
    from edgeguard.audit.keys import KeyStore  # noqa: PLC0415
    lost = KeyStore(key_file)
    lost_epoch = lost.epoch
    lost.seal({"never": "written"})  # the key moved on; no checkpoint carries it
    lost.close()
    _sealed_trail(log, key_file, clock, count=10)
    code, out = _verify(export, log)
    assert code == 0, out
    assert f"note: epoch {lost_epoch} is missing before the checkpoint at sequence" in out
    assert "(a crash while sealing, or a sealed checkpoint the writer could not write)" in out
