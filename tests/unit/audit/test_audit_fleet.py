"""Fleet verification at the collector (issue 22): several hosts' real trails (written by the
real writer, sealed with their own K0) as a collector received them, crafted: intact,
edited, re-chained without the key, with a gap, resent, reordered, truncated at the source,
silent, never heard from; one file per host and all mixed in one file."""

from __future__ import annotations

import random
import time
import tracemalloc
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
    return path


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
