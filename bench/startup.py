"""How long does ``edgeguard`` take to start, next to a bare Python of the same venv?

Runs each command as a whole process (interpreter start, imports, the command, exit)
several times and prints the medians and the ratio to ``python -c pass``. Issue 21's
goals: ``--version`` <= 3x and ``check`` <= 6x the bare start (before lazy loading every
command imported the daemon, pyroute2 and the detectors: ~12.8x). Also times
``report`` on a generated trail (``--records N``, default 100,000) for the planner.

Issue 23: ``replay`` of a small corpus file <= 0.1 s as a whole process. Printed next to
the bare start and, when installed (``command -v ndpiReader``), nDPI's reader on the same
file; each row also gives the CPU time of the process (user + system, from ``wait4``),
which a loaded machine inflates less than the wall time. ``PYTHONDONTWRITEBYTECODE``
is dropped for the runs (a package ships compiled bytecode: scripts/package.sh runs
compileall); ``--no-bytecode`` measures what a source tree without it costs. What
start-up loads and why: docs/startup.md.

Usage: ``python bench/startup.py [--runs 9] [--records 100000] [--tree DIR] [--no-bytecode]``
(``--tree``: time another checkout's ``edgeguard``, e.g. the main branch, with this venv).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The small corpus file ``replay`` is timed on (issue 23's goal: <= 0.1 s).
SMALL_PCAP = ROOT / "tests" / "data" / "pcaps" / "bt_split.pcap"
REPLAY_GOAL_S = 0.1

COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", ["-c", "pass"], None),
    ("edgeguard --version", ["-m", "edgeguard", "--version"], 3.0),
    ("edgeguard check", ["-m", "edgeguard", "check"], 6.0),
    ("edgeguard replay --help", ["-m", "edgeguard", "replay", "--help"], None),
    ("edgeguard --help (all)", ["-m", "edgeguard", "--help"], None),
)


def _run(cmd: list[str], tree: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=tree, env=env)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime


def _medians(cmd: list[str], runs: int, tree: Path, env: dict[str, str]) -> tuple[float, float]:
    samples = [_run(cmd, tree, env) for _ in range(runs)]
    return (statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples))


def _env(bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _median(argv: list[str], runs: int, tree: Path = ROOT) -> float:
    return _medians([sys.executable, *argv], runs, tree, _env(True))[0]


def replay_rows(runs: int, tree: Path, *, bytecode: bool) -> None:
    """``replay`` on a small file vs ``python -c pass`` and ndpiReader, wall and CPU."""
    env = _env(bytecode)
    if bytecode:  # write the bytecode once, as the package build does
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "edgeguard")],
                       stdout=subprocess.DEVNULL, check=False, env=env)
    rows: list[tuple[str, list[str]]] = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        (f"edgeguard replay {SMALL_PCAP.name}",
         [sys.executable, "-m", "edgeguard", "replay", str(SMALL_PCAP)]),
        ("edgeguard replay --json",
         [sys.executable, "-m", "edgeguard", "replay", "--json", str(SMALL_PCAP)]),
    ]
    ndpi = shutil.which("ndpiReader")
    if ndpi:
        rows.append(("ndpiReader -i (same file)", [ndpi, "-i", str(SMALL_PCAP), "-q"]))
    print(f"\nreplay start-up ({SMALL_PCAP.stat().st_size:,} bytes; bytecode "
          f"{'compiled' if bytecode else 'not written'}; goal <= {REPLAY_GOAL_S} s)")
    print(f"{'command':<36}{'wall':>9}{'CPU':>9}{'x bare CPU':>12}")
    bare_cpu = 0.0
    for name, cmd in rows:
        wall, cpu = _medians(cmd, runs, tree, env)
        bare_cpu = bare_cpu or cpu
        print(f"{name:<36}{wall * 1000:>7.0f}ms{cpu * 1000:>7.0f}ms{cpu / bare_cpu:>11.1f}x")
    if not ndpi:
        print("(ndpiReader not installed: no row for it)")


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
    parser.add_argument("--no-bytecode", action="store_true",
                        help="time replay without compiled bytecode (a source tree)")
    args = parser.parse_args()
    bare = _median(COMMANDS[0][1], args.runs)
    print(f"{'command':<28}{'median':>10}{'x bare':>9}  goal")
    for name, argv, goal in COMMANDS:
        t = bare if argv is COMMANDS[0][1] else _median(argv, args.runs, args.tree)
        ratio = t / bare
        verdict = "" if goal is None else f"<= {goal:.0f}x {'ok' if ratio <= goal else 'MISSED'}"
        print(f"{name:<28}{t * 1000:>8.0f}ms{ratio:>8.1f}x  {verdict}")
    replay_rows(args.runs, args.tree, bytecode=not args.no_bytecode)
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
