"""How long does ``edgeguard`` take to start, next to a bare Python of the same venv?

Runs each command as a whole process (interpreter start, imports, the command, exit)
several times and prints the medians and the ratio to ``python -c pass``. Issue 21's
goals: ``--version`` <= 3x and ``check`` <= 6x the bare start (before lazy loading every
command imported the daemon, pyroute2 and the detectors: ~12.8x). Also times
``report`` on a generated trail (``--records N``, default 100,000) for the planner.

Usage: ``python bench/startup.py [--runs 9] [--records 100000] [--tree DIR]``
(``--tree``: time another checkout's ``edgeguard``, e.g. the main branch, with this venv).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", ["-c", "pass"], None),
    ("edgeguard --version", ["-m", "edgeguard", "--version"], 3.0),
    ("edgeguard check", ["-m", "edgeguard", "check"], 6.0),
    ("edgeguard replay --help", ["-m", "edgeguard", "replay", "--help"], None),
    ("edgeguard --help (all)", ["-m", "edgeguard", "--help"], None),
)


def _median(argv: list[str], runs: int, tree: Path = ROOT) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, cwd=tree)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _trail(directory: Path, records: int) -> None:
    from edgeguard.audit.writer import AuditWriter  # noqa: PLC0415
    from edgeguard.clock import FakeClock  # noqa: PLC0415
    from edgeguard.events import AuditRecord, Endpoint, EventKind, Outcome  # noqa: PLC0415

    clock = FakeClock(time.time() - 6 * 86400)
    writer = AuditWriter(directory, clock=clock, host="bench", fsync_interval=10.0)
    step = 6 * 86400 / records
    try:
        for i in range(records):
            clock.advance(step)
            writer.write(AuditRecord(
                action="scan-syn", message=f"10.0.{i % 7}.{i % 250} probed 25 ports",
                kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
                source=Endpoint(ip=f"10.0.{i % 7}.{i % 250}"), rule_id="net-scan",
                fields={"edgeguard.finding.kind": ("scan", "sweep", "bittorrent")[i % 3],
                        "edgeguard.finding.subtype": "syn"}))
    finally:
        writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout whose edgeguard runs (python -m from there)")
    args = parser.parse_args()
    bare = _median(COMMANDS[0][1], args.runs)
    print(f"{'command':<28}{'median':>10}{'x bare':>9}  goal")
    for name, argv, goal in COMMANDS:
        t = bare if argv is COMMANDS[0][1] else _median(argv, args.runs, args.tree)
        ratio = t / bare
        verdict = "" if goal is None else f"<= {goal:.0f}x {'ok' if ratio <= goal else 'MISSED'}"
        print(f"{name:<28}{t * 1000:>8.0f}ms{ratio:>8.1f}x  {verdict}")
    if args.records:
        with tempfile.TemporaryDirectory() as tmp:
            trail = Path(tmp) / "audit"
            _trail(trail, args.records)
            size = sum(p.stat().st_size for p in trail.iterdir())
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgeguard", "report", "--html",
                            str(Path(tmp) / "r.html"), str(trail)], stdout=subprocess.DEVNULL,
                           check=True, cwd=ROOT)
            took = time.perf_counter() - start
            print(f"report --html on {args.records:,} records ({size / 2**20:.0f} MiB): "
                  f"{took:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
