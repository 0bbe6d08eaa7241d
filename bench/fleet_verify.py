"""Fleet verification at the collector: records per second ``audit verify --fleet`` checks.

    PYTHONPATH=. .venv/bin/python bench/fleet_verify.py [--hosts 50] [--records 2000]

Writes ``--hosts`` trails with the real writer (each sealed with its own K0, a checkpoint
every ``--checkpoint-every`` records), lays them out as a collector received them (one
file per host, and every host mixed in one file, each line after an RFC 5424 prefix) and
times, side by side:

* ``verify_fleet`` with every host's K0 (chain + checkpoint MACs), per-host files;
* the same over the one mixed file;
* ``verify_fleet`` without keys (chain only);
* ``verify_paths`` (the single-host verifier) over each host's own directory, one after
  the other (what a collector would do with the per-host tool);
* reading every line and hashing it with SHA-256 (the floor: I/O + one hash).

Each verifier runs in a forked child; its peak memory is that child's maximum RSS growth
(ru_maxrss). Figures only: no test asserts them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgeguard.audit.fleet import load_keys, verify_fleet
from edgeguard.audit.keys import enrol
from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome, Severity

START = 1_900_000_000.0


def record(i: int) -> AuditRecord:
    return AuditRecord(action="scan-syn", message=f"10.0.{i % 250}.7 probed 25 ports",
                       kind=EventKind.ALERT, category=("network", "intrusion_detection"),
                       outcome=Outcome.SUCCESS, severity=Severity.MODERATE, rule_id="net-scan",
                       source=Endpoint(ip=f"10.0.{i % 250}.7"),
                       fields={"edgeguard.scan.ports": 25})


def make_fleet(root: Path, hosts: int, records: int, checkpoint_every: int) -> int:
    keys, per_host, mixed = root / "keys", root / "per-host", root / "mixed"
    for d in (keys, per_host, mixed):
        d.mkdir()
    total = 0
    with (mixed / "all.log").open("wb") as all_fh:
        for h in range(hosts):
            name = f"kiosk-{h:03d}"
            enrol(root / f"{name}.evolving", keys / f"{name}.key")
            clock = FakeClock(START)
            writer = AuditWriter(root / "trails" / name, clock=clock, host=name,
                                 key_file=root / f"{name}.evolving",
                                 checkpoint_records=checkpoint_every, fsync_interval=0.25)
            for i in range(records):
                clock.advance(0.01)
                writer.write(record(i))
            writer.close()
            prefix = f"<110>1 2030-03-17T17:46:40Z {name} edgeguard - scan-syn - ".encode()
            with (per_host / f"{name}.log").open("wb") as fh:
                trail = root / "trails" / name
                for seg in [*sorted(trail.glob("audit-*.jsonl")), trail / "audit.jsonl"]:
                    for line in seg.read_bytes().splitlines():
                        fh.write(prefix + line + b"\n")
                        all_fh.write(prefix + line + b"\n")
                        total += 1
    return total


def timed(label: str, total: int, run: Callable[[], object]) -> None:
    """Run in a forked child, so each verifier's peak RSS is its own."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report elapsed seconds and RSS growth (KiB)
        os.close(read_end)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        run()
        elapsed = time.perf_counter() - t0
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        os.write(write_end, f"{elapsed} {grown}".encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        answer = fh.read().split()
    os.waitpid(pid, 0)
    elapsed, grown = float(answer[0]), int(answer[1])
    print(f"| {label} | {total / elapsed:,.0f} | {elapsed:.2f} s | {grown / 1024:.1f} MiB |")


def sha_floor(directory: Path) -> None:
    for path in sorted(directory.iterdir()):
        with path.open("rb") as fh:
            for line in fh:
                hashlib.sha256(line).digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--records", type=int, default=2000, help="records per host")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        total = make_fleet(root, args.hosts, args.records, args.checkpoint_every)
        print(f"{args.hosts} hosts, {total:,} received lines (written in "
              f"{time.perf_counter() - t0:.1f} s)\n")
        keys = load_keys(root / "keys")
        now = START + args.records * 0.01
        print("| verifier | records/s | time | peak RSS growth |")
        print("|---|---:|---:|---:|")
        timed("sha256 of every line (floor)", total, lambda: sha_floor(root / "per-host"))
        timed("verify --fleet, chain only", total,
              lambda: verify_fleet(root / "per-host", now=now))
        timed("verify --fleet with K0 (per-host files)", total,
              lambda: verify_fleet(root / "per-host", keys=keys, now=now))
        timed("verify --fleet with K0 (one mixed file)", total,
              lambda: verify_fleet(root / "mixed", keys=keys, now=now))
        timed("verify (single host) per host directory", total,
              lambda: [verify_paths([d]) for d in sorted((root / "trails").iterdir())])


if __name__ == "__main__":
    main()
