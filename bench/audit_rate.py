"""Audit writer throughput and decision->durable latency, side by side with two peers.

    PYTHONPATH=. /work/venv/bin/python bench/audit_rate.py [--records N] [--dir DIR]

* edgeguard AuditWriter (hash chain, canonical JSON, group fdatasync; two intervals),
* a naive writer that fdatasyncs every record (the "obviously durable" design),
* Python ``logging`` to a file with a JSON formatter (not durable, not chained).

Latency is measured from ``write()`` to the moment ``synced_sequence`` covers the record
(a watcher thread polls every 0.5 ms). Figures only: the tests never assert timings.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson

from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import SystemClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome, Severity


def record(i: int) -> AuditRecord:
    return AuditRecord(action="scan-syn", message=f"10.0.{i % 250}.7 probed 25 ports",
                       kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
                       severity=Severity.MODERATE, rule_id="net-scan",
                       source=Endpoint(ip=f"10.0.{i % 250}.7"),
                       fields={"edgeguard.scan.ports": 25, "edgeguard.scan.window": 3.1})


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def bench_edgeguard(directory: Path, n: int, interval: float) -> dict[str, float]:
    writer = AuditWriter(directory, clock=SystemClock(), host="bench",
                         segment_size=64 * 1024**2, fsync_interval=interval,
                         checkpoint_records=10_000)
    issued: dict[int, float] = {}
    durable: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        seen = 0
        while not done.is_set() or seen < writer.head[0]:
            synced = writer.synced_sequence
            if synced > seen:
                now = time.perf_counter()
                for seq in range(seen + 1, synced + 1):
                    durable[seq] = now
                seen = synced
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        seq = writer.write(record(i))
        issued[seq] = t
    elapsed = time.perf_counter() - start
    writer.flush()
    done.set()
    watcher.join()
    writer.close()
    lat = [(durable[s] - t) * 1000 for s, t in issued.items() if s in durable]
    return {"rate": n / elapsed, "p50": pct(lat, 50), "p99": pct(lat, 99)}


def bench_naive(directory: Path, n: int) -> dict[str, float]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "naive.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    prev = "0" * 64
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        body = {"message": record(i).message, "event": {"sequence": i + 1}}
        prev = hashlib.sha256(prev.encode() + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()
        body["event"]["hash"] = prev  # type: ignore[index]
        os.write(fd, orjson.dumps(body) + b"\n")
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return {"rate": n / elapsed, "p50": statistics.median(lat), "p99": pct(lat, 99)}


def bench_logging(directory: Path, n: int) -> dict[str, float]:
    directory.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("bench.audit")
    logger.propagate = False
    handler = logging.FileHandler(directory / "logging.jsonl")
    handler.setFormatter(logging.Formatter('{"@timestamp":"%(asctime)s","message":"%(message)s"}'))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    for i in range(n):
        logger.info("%s", record(i).message)
    elapsed = time.perf_counter() - start
    handler.close()
    logger.removeHandler(handler)
    return {"rate": n / elapsed, "p50": float("nan"), "p99": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--naive-records", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a real disk)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="edgeguard-bench-", dir="/var/tmp"))
    rows = [
        ("edgeguard, group fdatasync 250 ms", bench_edgeguard(base / "eg250", args.records, 0.25),
         "yes"),
        ("edgeguard, group fdatasync 10 ms", bench_edgeguard(base / "eg10", args.records, 0.01),
         "yes"),
        ("naive: fdatasync per record", bench_naive(base / "naive", args.naive_records), "yes"),
        ("python logging FileHandler", bench_logging(base / "logging", args.records), "no"),
    ]
    print(f"{'writer':38} {'records/s':>12} {'p50 ms':>9} {'p99 ms':>9}  durable")
    for name, r, durable in rows:
        print(f"{name:38} {r['rate']:12,.0f} {r['p50']:9.2f} {r['p99']:9.2f}  {durable}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n(files in {base}; load average {load} on {os.cpu_count()} CPUs; "
          "goal: >= 20,000 records/s with group fsync)")


if __name__ == "__main__":
    main()
