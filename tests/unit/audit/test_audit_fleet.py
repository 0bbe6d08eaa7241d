"""Fleet verification at the collector (issue 22): several hosts' real trails (written by the
real writer, sealed with their own K0) as a collector received them, crafted: intact,
edited, re-chained without the key, with a gap, resent, reordered, truncated at the source,
silent, never heard from; one file per host and all mixed in one file."""

from __future__ import annotations

import os
import random
import shutil
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from edgeguard.audit import fleet as fleet_mod
from edgeguard.audit.chain import GENESIS_HASH, canonical, chain_hash, strip_hash
from edgeguard.audit.fleet import FleetReport, Status, load_keys, verify_fleet
from edgeguard.audit.keys import enrol
from edgeguard.audit.writer import AuditWriter
from edgeguard.cli import main
from edgeguard.clock import FakeClock
from tests.support.schema import validate_row
from tests.unit.audit.audit_helpers import sample_record

START = 1_800_000_000.0
PREFIX = b"<110>1 2027-01-15T08:00:00Z {host} edgeguard - scan-syn - "


def host_trail(root: Path, host: str, count: int, *, keys: Path | None,
               start: float = START) -> tuple[Path, list[bytes]]:
    """A host's audit directory written by the real writer, and its lines in order."""
    directory = root / "hosts" / host
    key_file = None
    if keys is not None:
        keys.mkdir(exist_ok=True)
        key_file = root / "hosts" / f"{host}.evolving.key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        enrol(key_file, keys / f"{host}.key")
    clock = FakeClock(start)
    writer = AuditWriter(directory, clock=clock, host=host, segment_size=8000,
                         fsync_interval=0.05, key_file=key_file, checkpoint_records=7)
    try:
        for i in range(count):
            clock.advance(0.5)
            writer.write(sample_record(i))
    finally:
        writer.close()
    segs = [*sorted(directory.glob("audit-*.jsonl")), directory / "audit.jsonl"]
    lines = [line for seg in segs if seg.exists() for line in seg.read_bytes().splitlines()]
    return directory, lines


def receive(collector: Path, host: str, lines: list[bytes], *, prefix: bool = True) -> Path:
    collector.mkdir(exist_ok=True)
    path = collector / f"{host}.log"
    head = PREFIX.replace(b"{host}", host.encode()) if prefix else b""
    with path.open("ab") as fh:
        for line in lines:
            fh.write(head + line + b"\n")
    received_at(path, max(orjson.loads(line)["@timestamp"] for line in lines))
    return path


def received_at(path: Path, stamp: str | float) -> None:
    """The collector wrote ``path`` last at ``stamp`` (an @timestamp or seconds)."""
    when = stamp if isinstance(stamp, float) else datetime.strptime(
        stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    os.utime(path, (when, when))


def rechain(lines: list[bytes], edit_at: int) -> list[bytes]:
    """Edit record ``edit_at`` (a list index) and recompute every hash after it, checkpoint
    heads included, as someone holding the records but not the key would."""
    out: list[bytes] = []
    prev = GENESIS_HASH
    for index, raw in enumerate(lines):
        rec = orjson.loads(raw)
        if index == edit_at:
            rec["message"] = "nothing happened here"
        if index >= edit_at:
            cp = rec.get("edgeguard", {}).get("checkpoint")
            if cp is not None:
                cp["head_hash"] = prev
            rec["event"]["hash"] = chain_hash(prev, strip_hash(rec))
        prev = rec["event"]["hash"]
        out.append(canonical(rec))
    return out


def by_host(report: FleetReport) -> dict[str, Status]:
    return {c.host: c.status for c in report.chains}


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, Path, dict[str, Path], float]:
    keys, collector = tmp_path / "keys", tmp_path / "collector"
    homes: dict[str, Path] = {}
    for host in ("gw-1", "kiosk-2", "kiosk-3", "kiosk-4", "kiosk-5", "kiosk-7", "kiosk-8"):
        start = START - 3600 if host == "kiosk-5" else START
        homes[host], lines = host_trail(tmp_path, host, 60, keys=keys, start=start)
        if host == "kiosk-2":  # one record edited at the collector (or in transit)
            rec = orjson.loads(lines[30])
            rec["source"]["ip"] = "10.9.9.9"
            lines[30] = canonical(rec)
        elif host == "kiosk-3":  # records lost between host and collector
            del lines[20:26]
        elif host == "kiosk-7":  # re-chained by someone without K0
            lines = rechain(lines, 12)
        elif host == "kiosk-8":  # a reconnect resent 10 records, and two arrived swapped
            lines = lines[:40] + lines[30:40] + lines[40:]
            lines[45], lines[46] = lines[46], lines[45]
        receive(collector, host, lines)
        if host == "kiosk-4":  # the newest records cut from the host's own trail afterwards
            active = homes[host] / "audit.jsonl"
            kept = active.read_bytes().splitlines(keepends=True)[:-5]
            active.write_bytes(b"".join(kept))
    enrol(tmp_path / "hosts" / "kiosk-6.evolving.key", keys / "kiosk-6.key")  # never sent
    return keys, collector, homes, START + 60 * 0.5 + 5


def test_each_host_gets_its_status(fleet: tuple[Path, Path, dict[str, Path], float]) -> None:
    keys, collector, homes, now = fleet
    report = verify_fleet(collector, keys=load_keys(keys),
                          host_copies={"kiosk-4": [homes["kiosk-4"]]}, now=now)
    assert by_host(report) == {
        "gw-1": Status.VERIFIED, "kiosk-2": Status.TAMPERED, "kiosk-3": Status.GAP,
        "kiosk-4": Status.TRUNCATED_AT_SOURCE, "kiosk-5": Status.SILENT,
        "kiosk-6": Status.SILENT, "kiosk-7": Status.TAMPERED, "kiosk-8": Status.VERIFIED}
    chains = {c.host: c for c in report.chains}
    assert chains["gw-1"].sealed
    assert chains["gw-1"].checkpoints >= 8
    assert chains["kiosk-2"].problems[0][1] == orjson.loads(
        (collector / "kiosk-2.log").read_bytes().splitlines()[30]
        .partition(b" - scan-syn - ")[2])["event"]["sequence"]
    assert chains["kiosk-3"].gaps == [(21, 26)]
    assert chains["kiosk-3"].missing == 6
    assert "checkpoint-mac" in chains["kiosk-7"].problems[0][2]
    assert chains["kiosk-8"].duplicates == 10
    assert not report.ok


def test_without_k0_a_rechained_copy_passes_the_chain_check(
        fleet: tuple[Path, Path, dict[str, Path], float]) -> None:
    """What the keys add: without them kiosk-7's forged copy looks intact."""
    _, collector, _, now = fleet
    report = verify_fleet(collector, now=now)
    statuses = by_host(report)
    assert statuses["kiosk-7"] is Status.VERIFIED
    assert statuses["kiosk-2"] is Status.TAMPERED  # an edit without re-chaining still shows
    assert "kiosk-6" not in statuses  # unknown without its key file or --expect


def test_one_mixed_file_gives_the_same_result(
        fleet: tuple[Path, Path, dict[str, Path], float], tmp_path: Path) -> None:
    keys, collector, homes, now = fleet
    per_host = {p.name: p.read_bytes().splitlines(keepends=True)
                for p in sorted(collector.iterdir())}
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    with (mixed / "all.log").open("wb") as fh:  # round-robin, as one receiver writes them
        for index in range(max(len(v) for v in per_host.values())):
            for lines in per_host.values():
                if index < len(lines):
                    fh.write(lines[index].partition(b" - scan-syn - ")[2])  # no prefix too
    received_at(mixed / "all.log", max(p.stat().st_mtime for p in collector.iterdir()))
    copies = {"kiosk-4": [homes["kiosk-4"]]}
    assert by_host(verify_fleet(mixed, keys=load_keys(keys), host_copies=copies, now=now)) \
        == by_host(verify_fleet(collector, keys=load_keys(keys), host_copies=copies, now=now))


def test_resent_record_with_another_hash_is_tampering(tmp_path: Path) -> None:
    _, lines = host_trail(tmp_path, "gw-9", 20, keys=None)
    forged = orjson.loads(lines[10])
    forged["message"] = "forged"
    forged["event"]["hash"] = chain_hash(orjson.loads(lines[9])["event"]["hash"],
                                         strip_hash(forged))
    receive(tmp_path / "c", "gw-9", [*lines, canonical(forged)])
    (chain,) = verify_fleet(tmp_path / "c", now=START + 15).chains
    assert chain.status is Status.TAMPERED
    assert "received twice with different hashes" in chain.problems[0][2]


def test_host_holds_more_than_the_collector_is_a_gap(tmp_path: Path) -> None:
    home, lines = host_trail(tmp_path, "gw-9", 30, keys=None)
    receive(tmp_path / "c", "gw-9", lines[:-4])
    (chain,) = verify_fleet(tmp_path / "c", host_copies={"gw-9": [home]},
                            now=START + 20).chains
    assert chain.status is Status.GAP
    assert "not received" in chain.problems[0][2] or "has not received" in chain.problems[0][2]


def test_a_reorder_beyond_the_buffer_is_a_gap_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_mod, "REORDER_LIMIT", 4)
    _, lines = host_trail(tmp_path, "gw-9", 40, keys=None)
    receive(tmp_path / "c", "gw-9", lines[:10] + lines[20:] + lines[10:20])
    (chain,) = verify_fleet(tmp_path / "c", now=START + 25).chains
    assert chain.status is Status.GAP
    assert chain.gaps[0][0] == orjson.loads(lines[10])["event"]["sequence"]


def _synthetic(path: Path, count: int, host: str = "gw-big") -> None:
    prev = GENESIS_HASH
    with path.open("wb") as fh:
        for seq in range(1, count + 1):
            rec = {"@timestamp": "2027-01-15T08:00:00.000000Z", "host": {"name": host},
                   "edgeguard": {"chain_id": "c" * 32},
                   "event": {"action": "scan-syn", "sequence": seq}, "message": f"r{seq}"}
            rec["event"]["hash"] = prev = chain_hash(prev, rec)
            fh.write(canonical(rec) + b"\n")
    received_at(path, START)


def _peak(directory: Path) -> int:
    tracemalloc.start()
    try:
        report = verify_fleet(directory, now=START)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.chains[0].status is Status.VERIFIED
    return peak


def test_memory_does_not_grow_with_the_records(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_mod, "DUPLICATE_WINDOW", 100)  # full in both runs
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    _synthetic(tmp_path / "small" / "a.log", 600)
    _synthetic(tmp_path / "large" / "a.log", 6_000)
    small, large = _peak(tmp_path / "small"), _peak(tmp_path / "large")
    assert large < small * 1.5 + 512 * 1024, (small, large)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().out


def test_cli_one_line_per_host_json_and_exit_code(
        fleet: tuple[Path, Path, dict[str, Path], float],
        capsys: pytest.CaptureFixture[str]) -> None:
    keys, collector, homes, _ = fleet
    args = ["audit", "verify", "--fleet", str(collector), "--keys", str(keys),
            "--host-copy", f"kiosk-4={homes['kiosk-4']}"]
    code, text = _cli(args, capsys)
    assert code == 1
    lines = text.splitlines()
    assert len(lines) == 8
    assert any(line.startswith("gw-1 ") and " verified: " in line for line in lines)
    assert any(line.startswith("kiosk-4 ") and "truncated-at-source" in line for line in lines)
    code, text = _cli([*args, "--json"], capsys)
    rows = [orjson.loads(line) for line in text.splitlines()]
    for row in rows:
        validate_row(row)
    assert {r["host"]["name"]: r["edgeguard"]["fleet"]["status"] for r in rows}["kiosk-3"] == "gap"
    assert _cli(["audit", "verify", "--fleet", str(collector / "gw-1.log")], capsys)[0] == 2
    assert _cli([*args[:4], "--host-copy", "kiosk-4"], capsys)[0] == 2
    assert _cli(["audit", "verify", "--keys", str(keys), str(collector)], capsys)[0] == 2


def test_cli_exit_zero_when_every_host_verifies(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    _, lines = host_trail(tmp_path, "gw-1", 30, keys=keys, start=time.time() - 20)
    receive(tmp_path / "c", "gw-1", lines)
    code, text = _cli(["audit", "verify", "--fleet", str(tmp_path / "c"), "--keys", str(keys)],
                      capsys)
    assert code == 0, text
    assert text.startswith("gw-1 ")
    assert " verified: 41 records" in text  # 30 + segment headers and checkpoints
    assert "(sealed)" in text


def test_random_duplicates_and_local_reorders_still_verify(tmp_path: Path) -> None:
    _, lines = host_trail(tmp_path, "gw-9", 80, keys=None)
    rng = random.Random(22)
    received: list[bytes] = []
    for index, line in enumerate(lines):
        received.append(line)
        if rng.random() < 0.1:  # a resend of one of the last few
            received.append(lines[max(0, index - rng.randrange(5))])
    for _ in range(10):  # swaps within a short distance
        i = rng.randrange(len(received) - 3)
        received[i], received[i + 2] = received[i + 2], received[i]
    receive(tmp_path / "c", "gw-9", received)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 41).chains
    assert chain.status is Status.VERIFIED, chain.problems
    assert chain.records == len(lines)


def test_tampering_after_many_gaps_is_still_tampering(tmp_path: Path) -> None:
    """The list of problems is bounded; the status is not: an edit after ten gaps shows."""
    _, lines = host_trail(tmp_path, "gw-9", 80, keys=None)
    kept = [line for index, line in enumerate(lines) if index % 6 != 3]  # 13 gaps
    rec = orjson.loads(kept[-2])
    rec["message"] = "edited"
    kept[-2] = canonical(rec)
    receive(tmp_path / "c", "gw-9", kept)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 41).chains
    assert chain.status is Status.TAMPERED
    assert len(chain.gaps) == 8  # listed; the rest counted
    assert chain.missing == sum(1 for index in range(len(lines)) if index % 6 == 3)
    assert any(p[0] is Status.TAMPERED for p in chain.problems)


# -- reviewer's findings: file order, unchecked resends, missing head, host clock, wiped trail


def _chain_lines(count: int, host: str = "gw-big", *, first: int = 1,
                 stamp: str = "2027-01-15T08:00:00.000000Z") -> list[bytes]:
    prev, out = GENESIS_HASH, []
    for seq in range(first, first + count):
        rec = {"@timestamp": stamp, "host": {"name": host},
               "edgeguard": {"chain_id": "c" * 32},
               "event": {"action": "scan-syn", "sequence": seq}, "message": f"r{seq}"}
        rec["event"]["hash"] = prev = chain_hash(prev, rec)
        out.append(canonical(rec))
    return out


def _edit(line: bytes) -> bytes:
    rec = orjson.loads(line)
    rec["message"] = "nothing happened here"
    return canonical(rec)


def test_an_edited_file_read_last_by_mtime_is_still_chain_checked(tmp_path: Path) -> None:
    """5000 records in 25 rotated files; record 11 edited in the file holding 1..200, which
    the edit made the newest: read in sequence order, it is tampering, not 200 resends."""
    lines = _chain_lines(5000)
    lines[10] = _edit(lines[10])
    collector = tmp_path / "c"
    collector.mkdir()
    for part in range(25):
        path = collector / f"gw-big.log.{24 - part}"
        path.write_bytes(b"\n".join(lines[200 * part:200 * part + 200]) + b"\n")
        received_at(path, START - 1000 + part)
    received_at(collector / "gw-big.log.24", START)  # the edit bumped its mtime
    (chain,) = verify_fleet(collector, now=START + 5).chains
    assert chain.status is Status.TAMPERED, (chain.problems, chain.unchecked_duplicates)
    assert chain.problems[0][1] == 11
    assert chain.unchecked_duplicates == 0
    assert chain.records == 5000


def test_a_late_head_is_verified_not_taken_for_resends(tmp_path: Path) -> None:
    """Records below the first one read (the chain's head arriving after 101..200)."""
    lines = _chain_lines(200)
    lines[40] = _edit(lines[40])
    receive(tmp_path / "c", "gw-big", lines[100:] + lines[:100], prefix=False)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 5).chains
    assert chain.status is Status.TAMPERED
    assert chain.problems[0][1] == 41
    assert chain.first_sequence == 1
    assert chain.unchecked_duplicates == 0


def test_resends_older_than_the_window_keep_a_chain_from_verifying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fleet_mod, "DUPLICATE_WINDOW", 100)
    lines = _chain_lines(600)
    receive(tmp_path / "c", "gw-big", lines + lines[:10], prefix=False)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 5).chains
    assert chain.unchecked_duplicates == 10
    assert chain.status is Status.UNCHECKED
    code, text = _cli(["audit", "verify", "--fleet", str(tmp_path / "c")], capsys)
    assert code == 1
    assert " unchecked: " in text
    assert "10 unchecked duplicates" in text


def test_a_missing_head_without_a_host_copy_is_not_verified(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receive(tmp_path / "c", "gw-big", _chain_lines(300)[50:], prefix=False)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 5).chains
    assert chain.status is Status.UNCHECKED
    assert "1..50" in chain.problems[0][2]
    code, text = _cli(["audit", "verify", "--fleet", str(tmp_path / "c")], capsys)
    assert code == 1
    assert "the collector's copy starts at sequence 51" in text  # the notes are printed


def test_a_future_dated_record_does_not_keep_a_host_from_going_silent(tmp_path: Path) -> None:
    """Silence runs from when the collector received the newest record (its file's mtime),
    not from the host's clock; the record dated a day ahead is flagged."""
    lines = _chain_lines(20)
    tail = _chain_lines(21)[-1]  # sequence 21, chained from 20, then dated a day ahead
    rec = orjson.loads(tail)
    rec["@timestamp"] = "2027-01-16T08:00:00.000000Z"
    rec["event"]["hash"] = chain_hash(orjson.loads(lines[-1])["event"]["hash"],
                                      strip_hash(rec))
    path = receive(tmp_path / "c", "gw-big", [*lines, canonical(rec)], prefix=False)
    received_at(path, START)
    (chain,) = verify_fleet(tmp_path / "c", now=START + 3600).chains
    assert chain.status is Status.SILENT, chain.problems
    assert chain.future_dated == 1
    assert any(p[0] is Status.UNCHECKED and "clock ahead" in p[2] for p in chain.problems)


@pytest.mark.parametrize("clean", [False, True], ids=["crashed", "clean-stop"])
def test_a_wiped_trail_and_fresh_chain_is_truncated_at_source(
        tmp_path: Path, clean: bool) -> None:
    """The host's directory wiped and a new chain started: the old chain the collector holds
    is truncated at the source, unless its last record is a clean stop's checkpoint."""
    home, old = host_trail(tmp_path, "gw-9", 30, keys=None)
    assert orjson.loads(old[-1])["edgeguard"]["checkpoint"]["reason"] == "shutdown"
    if not clean:  # killed: the collector's last record is not the shutdown checkpoint
        old = old[:-1]
    receive(tmp_path / "c", "gw-9", old)
    shutil.rmtree(home)
    _, new = host_trail(tmp_path, "gw-9", 10, keys=None, start=START + 100)
    receive(tmp_path / "c", "gw-9", new)
    report = verify_fleet(tmp_path / "c", host_copies={"gw-9": [home]}, now=START + 110)
    statuses = {c.chain_id: c.status for c in report.chains}
    old_chain = orjson.loads(old[0])["edgeguard"]["chain_id"]
    new_chain = orjson.loads(new[0])["edgeguard"]["chain_id"]
    assert old_chain != new_chain
    assert statuses[new_chain] is Status.VERIFIED
    assert statuses[old_chain] is (Status.VERIFIED if clean else Status.TRUNCATED_AT_SOURCE)
