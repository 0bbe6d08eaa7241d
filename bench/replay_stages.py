"""Where replay's time goes: microseconds per file frame per stage, in one process.

    .venv/bin/python bench/replay_stages.py [FILE.pcap] [--repeat 3]
    EDGEGUARD_PURE=1 .venv/bin/python bench/replay_stages.py ...   # the pure build

Stages are measured cumulatively (read; read + filter; read + filter + decode; the whole
replay with the detectors) and reported as differences, median of ``--repeat`` runs,
CPU time (process_time: a busy neighbour inflates wall time, less so CPU time). The
default file is the issue-23 mix (bench/replay_mix.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import edgeguard.net  # noqa: E402
from bench.replay_mix import ensure  # noqa: E402
from edgeguard.net.bpfjit import compile_program  # noqa: E402
from edgeguard.net.decode import DecodeCounters, decode  # noqa: E402
from edgeguard.net.filter import build_filter  # noqa: E402
from edgeguard.net.inspect import filter_spec  # noqa: E402
from edgeguard.net.pcapfile import read_capture  # noqa: E402
from edgeguard.net.replay import replay_file  # noqa: E402
from edgeguard.policy.load import load_policy  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = args.file or ensure("issue23")
    network = load_policy().policy.network
    keep = compile_program(build_filter(filter_spec(network)))

    def read() -> int:
        return sum(1 for _ in read_capture(path))

    def read_filter() -> int:
        n = 0
        for frame in read_capture(path):
            keep(frame.data, frame.wire_len)
            n += 1
        return n

    def read_filter_decode() -> int:
        n = 0
        counters = DecodeCounters()
        for frame in read_capture(path):
            snap = keep(frame.data, frame.wire_len)
            if snap:
                decode(frame.data[:snap], frame.ts, frame.wire_len, counters)
            n += 1
        return n

    def whole() -> int:
        return replay_file(path, network).counters["file_frames"]

    frames = read()
    stages: list[tuple[str, Callable[[], int]]] = [
        ("pcap read", read), ("filter", read_filter), ("decode", read_filter_decode),
        ("detectors", whole)]
    cumulative: list[float] = []
    for _name, fn in stages:
        runs = []
        for _ in range(args.repeat):
            start = time.process_time()
            fn()
            runs.append(time.process_time() - start)
        cumulative.append(statistics.median(runs) / frames * 1e6)
    build = "compiled" if edgeguard.net.compiled() else "pure"
    print(f"{path.name}: {frames} frames, {build}, CPU us/frame (median of {args.repeat})")
    previous = 0.0
    for (name, _), total in zip(stages, cumulative, strict=True):
        print(f"  {name:10} {total - previous:6.2f}")
        previous = total
    print(f"  {'total':10} {cumulative[-1]:6.2f}  ({1e6 / cumulative[-1]:,.0f} frames/s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
