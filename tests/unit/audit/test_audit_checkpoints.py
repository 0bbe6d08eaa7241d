"""Forward-secure checkpoints: sealed with K(epoch), checked with K0 off-host."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from audit_helpers import checkpoint_mac, lines_of, sample_record, segments

from edgeguard.audit.chain import canonical, chain_hash, strip_hash
from edgeguard.audit.checkpoint import CheckpointChecker
from edgeguard.audit.keys import AuditKeyError, KeyStore, enrol, evolve, read_export
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from tests.conftest import run_edgeguard


def _writer(tmp_path: Path, key_file: Path | None, clock: FakeClock, **kw: object) -> AuditWriter:
    kw.setdefault("checkpoint_records", 7)
    return AuditWriter(tmp_path / "log", clock=clock, host="h", segment_size=6000,
                       key_file=key_file, **kw)  # type: ignore[arg-type]


def _records(log: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for p in segments(log) if p.exists() for line in lines_of(p)]


def _checkpoints(log: Path) -> list[dict[str, object]]:
    return [r for r in _records(log) if r["event"]["action"] == "audit-checkpoint"]  # type: ignore[index]


def _write_sealed_log(tmp_path: Path, key_file: Path) -> Path:
    clock = FakeClock()
    writer = _writer(tmp_path, key_file, clock)
    for i in range(30):
        writer.write(sample_record(i))
        if i == 12:
            clock.advance(61)
            writer.tick()  # an interval checkpoint
    clock.advance(61)
    writer.tick()  # idle: still a checkpoint
    writer.close()
    return tmp_path / "log"


def test_init_exports_k0_once_with_mode_0600(enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    assert export.stat().st_mode & 0o777 == 0o600
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert read_export(export).k0 == bytes.fromhex(orjson.loads(key_file.read_bytes())["key"])
    again = run_edgeguard(["audit", "init", "--export-key", str(export) + ".2",
                           "--key-file", str(key_file)])
    assert again.returncode == 1
    assert "already enrolled" in again.stderr


def test_checkpoints_every_n_records_interval_idle_rotation_and_shutdown(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    log = _write_sealed_log(tmp_path, key_file)
    reasons = [c["edgeguard"]["checkpoint"]["reason"] for c in _checkpoints(log)]  # type: ignore[index]
    assert {"records", "interval", "rotation", "shutdown"} <= set(reasons)
    epochs = [c["edgeguard"]["checkpoint"]["epoch"] for c in _checkpoints(log)]  # type: ignore[index]
    assert epochs == list(range(len(epochs)))
    # the key on disk has moved on; K0 is no longer on this host
    store = orjson.loads(key_file.read_bytes())
    assert store["epoch"] == len(epochs)
    assert bytes.fromhex(store["key"]) != read_export(export).k0
    proc = run_edgeguard(["audit", "verify", "--key", str(export), str(log)])
    assert proc.returncode == 0, proc.stdout
    assert f"{len(epochs)} checkpoints verified" in proc.stdout


def _reseal(log: Path, index: int, key: bytes, epoch: int | None = None) -> int:
    """Rewrite checkpoint ``index`` as an intruder would: new MAC, chain re-hashed after."""
    path = next(p for p in segments(log) if any(b"audit-checkpoint" in x for x in lines_of(p)))
    lines = lines_of(path)
    cps = [i for i, x in enumerate(lines) if b'"audit-checkpoint"' in x]
    i = cps[index]
    rec = orjson.loads(lines[i])
    cp = rec["edgeguard"]["checkpoint"]
    if epoch is not None:
        cp["epoch"] = epoch
    cp["mac"] = checkpoint_mac(key, rec["edgeguard"]["chain_id"], cp)
    prev = orjson.loads(lines[i - 1])["event"]["hash"]
    for j in range(i, len(lines)):  # re-chain everything after, as an intruder can
        r = rec if j == i else orjson.loads(lines[j])
        r["event"]["hash"] = chain_hash(prev, strip_hash(r))
        prev = r["event"]["hash"]
        lines[j] = canonical(r) + b"\n"
    path.write_bytes(b"".join(lines))
    return int(rec["event"]["sequence"])


def test_intruder_with_the_current_key_cannot_reseal_an_old_checkpoint(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    log = _write_sealed_log(tmp_path, key_file)
    current = KeyStore(key_file)
    stolen = bytes(current._key)  # what an intruder reads from disk now
    seq = _reseal(log, 0, stolen)
    proc = run_edgeguard(["audit", "verify", "--key", str(export), str(log)])
    assert proc.returncode == 1
    assert f"first bad sequence {seq}: checkpoint-mac:" in proc.stdout
    assert "later than its epoch 0" in proc.stdout


def _sealed(k0: bytes, key_id: str, epoch: int, seq: int, prev: str, *,
            v2: dict[str, object] | None = None) -> dict[str, object]:
    """A checkpoint sealed with K(epoch): legacy (no time binding) unless ``v2`` fields."""
    key = bytearray(k0)
    for _ in range(epoch):
        key = evolve(key)
    cp: dict[str, object] = {"head_sequence": seq - 1, "head_hash": prev, "segment_bytes": 10,
                             "time": "2026-12-07T10:00:00.000000Z", "epoch": epoch,
                             "key_id": key_id, "sealed": True}
    if v2 is not None:
        cp.update({"version": 2, "interval": 60.0, "started": False, **v2})
    cp["mac"] = checkpoint_mac(bytes(key), "c", cp)
    return {"edgeguard": {"chain_id": "c", "checkpoint": cp}}


def test_legacy_epochs_increase_by_one_a_single_lost_epoch_is_named(
        enrolled: tuple[Path, Path]) -> None:
    k = read_export(enrolled[1])
    checker = CheckpointChecker(k)
    assert checker.check(5, _sealed(k.k0, k.key_id, 0, 5, "a"), "a") is None
    assert checker.check(9, _sealed(k.k0, k.key_id, 2, 9, "b"), "b") is None  # one lost
    assert checker.report.lost_epochs == [
        "epoch 1 is missing before the checkpoint at sequence 9 (legacy checkpoint without "
        "restart mark: a crash while sealing?)"]
    jump = checker.check(12, _sealed(k.k0, k.key_id, 5, 12, "c"), "c")
    assert jump is not None
    assert jump.reason == "checkpoint-epoch"
    assert "epochs 3..4 are missing" in jump.detail
    again = checker.check(12, _sealed(k.k0, k.key_id, 2, 12, "c"), "c")  # a reused key
    assert again is not None
    assert again.reason == "checkpoint-epoch"
    foreign = checker.check(12, _sealed(b"x" * 32, "0123", 3, 12, "c"), "c")
    assert foreign is not None
    assert foreign.reason == "checkpoint-key"
    stale = checker.check(12, _sealed(k.k0, k.key_id, 3, 12, "c"), "other head")
    assert stale is not None
    assert stale.reason == "checkpoint"
    downgraded = {"edgeguard": {"checkpoint": {"head_sequence": 11, "head_hash": "c",
                                               "sealed": False}}}
    late = checker.check(12, downgraded, "c")  # key removed after enrolment
    assert late is not None
    assert late.reason == "checkpoint-unsealed"


def test_first_sealed_epoch_must_be_zero(enrolled: tuple[Path, Path]) -> None:
    k = read_export(enrolled[1])
    late_start = CheckpointChecker(k).check(5, _sealed(k.k0, k.key_id, 7, 5, "a"), "a")
    assert late_start is not None
    assert late_start.reason == "checkpoint-epoch"
    assert "first sealed checkpoint has epoch 7, not 0" in late_start.detail
    pruned = CheckpointChecker(k)
    pruned.pruned_start = True  # the log starts after retention: its first epoch is reported
    assert pruned.check(5, _sealed(k.k0, k.key_id, 7, 5, "a"), "a") is None
    assert pruned.report.first_epoch == 7


def test_v2_gap_only_at_a_restart_and_no_downgrade(enrolled: tuple[Path, Path]) -> None:
    k = read_export(enrolled[1])
    checker = CheckpointChecker(k)
    assert checker.check(5, _sealed(k.k0, k.key_id, 0, 5, "a"), "a") is None  # legacy
    assert checker.check(6, _sealed(k.k0, k.key_id, 1, 6, "b", v2={}), "b") is None  # upgrade
    skipped = checker.check(9, _sealed(k.k0, k.key_id, 3, 9, "c", v2={}), "c")
    assert skipped is not None
    assert skipped.reason == "checkpoint-epoch"  # no restart mark: a jump
    assert checker.check(9, _sealed(k.k0, k.key_id, 3, 9, "c", v2={"started": True}),
                         "c") is None
    assert checker.report.lost_epochs[-1] == "epoch 2 is missing before the checkpoint at " \
        "sequence 9 (a crash while sealing, or a sealed checkpoint the writer could not write)"
    legacy_again = checker.check(12, _sealed(k.k0, k.key_id, 4, 12, "d"), "d")
    assert legacy_again is not None
    assert legacy_again.reason == "checkpoint-downgrade"
    # the signed version field cannot be stripped to look legacy: the MAC covers it
    forged = _sealed(k.k0, k.key_id, 4, 12, "d", v2={})
    del forged["edgeguard"]["checkpoint"]["version"]  # type: ignore[index]
    stripped = checker.check(12, forged, "d")
    assert stripped is not None
    assert stripped.reason == "checkpoint-downgrade"


def test_v2_time_gaps_and_backward_time_are_reported(enrolled: tuple[Path, Path]) -> None:
    k = read_export(enrolled[1])
    checker = CheckpointChecker(k)
    stamps = ["2026-12-07T10:00:00.000000Z", "2026-12-07T10:01:00.000000Z",
              "2026-12-07T10:31:00.000000Z", "2026-12-07T10:20:00.000000Z",
              "2026-12-07T12:00:00.000000Z"]
    started = [False, False, False, False, True]
    for epoch, (stamp, start) in enumerate(zip(stamps, started, strict=True)):
        seq = 10 * (epoch + 1)
        rec = _sealed(k.k0, k.key_id, epoch, seq, "h", v2={"time": stamp, "started": start})
        assert checker.check(seq, rec, "h") is None
    warnings = checker.report.time_warnings
    assert len(warnings) == 2
    assert warnings[0].startswith("1800 s without a checkpoint between epoch 1 (sequence 20) "
                                  "and epoch 2 (sequence 30), interval 60 s")
    assert warnings[1] == "time goes back 660 s from epoch 2 (sequence 30) to epoch 3 " \
        "(sequence 40)"
    assert checker.report.restarts == [
        "6000 s without a checkpoint between epoch 3 (sequence 40) and epoch 4 (sequence 50): "
        "the writer was stopped and restarted"]


def test_wrong_key_and_unsealed_checkpoints(tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    _key_file, export = enrolled
    clock = FakeClock()
    writer = _writer(tmp_path, None, clock)  # not enrolled: checkpoints are unsealed
    for i in range(10):
        writer.write(sample_record(i))
    writer.close()
    proc = run_edgeguard(["audit", "verify", "--key", str(export), str(tmp_path / "log")])
    assert proc.returncode == 1
    assert "checkpoint-unsealed" in proc.stdout
    # enrolled later: the old unsealed checkpoints are noted, the new ones checked
    clock.advance(10)
    writer = _writer(tmp_path, _key_file, clock)
    for i in range(10):
        writer.write(sample_record(i))
    writer.close()
    later = run_edgeguard(["audit", "verify", "--key", str(export), str(tmp_path / "log")])
    assert later.returncode == 0, later.stdout
    assert "written before the key was enrolled" in later.stdout
    assert run_edgeguard(["audit", "verify", str(tmp_path / "log")]).returncode == 0
    bad = tmp_path / "bad.key"
    bad.write_text("{}")
    assert run_edgeguard(["audit", "verify", "--key", str(bad),
                          str(tmp_path / "log")]).returncode == 2


def test_truncation_after_last_checkpoint_is_found_against_shipped_copy(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    log = _write_sealed_log(tmp_path, key_file)
    shipped = tmp_path / "shipped.log"  # as rsyslog writes it: a syslog prefix, then the JSON
    shipped.write_bytes(b"".join(b"<110>1 host edgeguard - - - " + line
                                 for p in segments(log) for line in lines_of(p)))
    clock = FakeClock(1_800_010_000)
    writer = _writer(tmp_path, key_file, clock, checkpoint_records=10_000)
    for i in range(5):  # after the last checkpoint; shipped, then cut locally
        writer.write(sample_record(100 + i))
        with shipped.open("ab") as fh:
            fh.write(b"<110>1 host edgeguard - - - " + lines_of(log / "audit.jsonl")[-1])
    last = writer.head[0]  # the writer stays open (killed later): no shutdown checkpoint
    active = log / "audit.jsonl"
    lines = lines_of(active)
    active.write_bytes(b"".join(lines[:-3]))  # the intruder cuts the last three records
    assert run_edgeguard(["audit", "verify", "--key", str(export), str(log)]).returncode == 0
    proc = run_edgeguard(["audit", "verify", "--key", str(export), "--against", str(shipped),
                          str(log)])
    assert proc.returncode == 1
    assert f"first bad sequence {last - 2}: truncated:" in proc.stdout
    assert f"holds records up to {last}" in proc.stdout
    writer.close()


def test_key_file_is_replaced_atomically_and_unsafe_files_are_refused(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    key_file, export = enrolled
    k0 = read_export(export).k0
    store = KeyStore(key_file)
    store.seal({"x": 1})
    assert k0.hex().encode() not in key_file.read_bytes()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not list(key_file.parent.glob(".*.tmp"))
    again = KeyStore(key_file)
    assert again.epoch == 1
    assert bytes(again._key) == bytes(evolve(k0))
    with pytest.raises(AuditKeyError):
        enrol(key_file, tmp_path / "other.key")
    key_file.chmod(0o666)  # anyone could have replaced it: refuse, say so, stay unsealed
    with pytest.raises(AuditKeyError, match="refused"):
        KeyStore(key_file)
    writer = AuditWriter(tmp_path / "log2", clock=FakeClock(), host="h", key_file=key_file)
    writer.close()
    assert writer.keys is None
    assert b'"audit-key-refused"' in (tmp_path / "log2" / "audit.jsonl").read_bytes()


def test_a_policy_duration_interval_seals_like_plain_seconds(
        tmp_path: Path, enrolled: tuple[Path, Path]) -> None:
    """The daemon configures the interval from the policy (a ``Duration``, a float
    subclass JSON cannot encode): sealing must not fail on it."""
    from edgeguard.policy.types import Duration  # noqa: PLC0415
    key_file, export = enrolled
    clock = FakeClock()
    writer = AuditWriter(tmp_path / "log", clock=clock, host="h")
    writer.configure(key_file=key_file, checkpoint_interval=Duration(1.0))
    writer.write(sample_record(0))
    clock.advance(2)
    writer.tick()
    assert writer.checkpoints == 1
    writer.close()
    cps = _checkpoints(tmp_path / "log")
    assert [c["edgeguard"]["checkpoint"]["interval"] for c in cps] == [1.0, 1.0]  # type: ignore[index]
    assert run_edgeguard(["audit", "verify", "--key", str(export),
                          str(tmp_path / "log")]).returncode == 0
