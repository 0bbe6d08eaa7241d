"""Where replay's time goes: microseconds per file frame per stage, in one process.

    .venv/bin/python bench/replay_stages.py [FILE.pcap] [--repeat 3]
    EDGEGUARD_PURE=1 .venv/bin/python bench/replay_stages.py ...   # the pure build

Stages are measured cumulatively (read; read + filter; read + filter + decode; the whole
replay with the detectors) and reported as differences, median of ``--repeat`` runs,
CPU time (process_time: a busy neighbour inflates wall time, less so CPU time). The
default file is the issue-23 mix (bench/replay_mix.py).

The first three stages go frame by frame (``read_capture``'s frame tuples, then the
filter and the decoder on each frame's bytes); ``replay`` itself reads a pcap through
the frame loop (edgeguard.net.frameloop: filter and decoder on the frames in place in
the read buffer), whose read + filter + decode is measured as one figure ("frame loop")
and is what the detectors' figure is the difference from.
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
from edgeguard.net.frameloop import FrameLoop  # noqa: E402
from edgeguard.net.inspect import Inspector, build_chain, filter_spec  # noqa: E402
from edgeguard.net.pcapfile import (  # noqa: E402
    PCAP_HEADER_SIZE,
    ReaderCounters,
    pcap_header,
    read_capture,
)
from edgeguard.net.replay import PacketClock, replay_file  # noqa: E402
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

    def frame_loop() -> int:
        insp = Inspector.for_replay(network, build_chain(network, PacketClock()))
        loop = FrameLoop(insp, ReaderCounters())
        with path.open("rb") as fh:
            head = pcap_header(fh.read(PCAP_HEADER_SIZE))
            assert head is not None
            for _ in loop.pcap(fh, head):
                pass
        return insp.frames

    def whole() -> int:
        return replay_file(path, network).counters["file_frames"]

    frames = read()
    stages: list[tuple[str, Callable[[], int]]] = [
        ("pcap read", read), ("filter", read_filter), ("decode", read_filter_decode),
        ("frame loop", frame_loop), ("detectors", whole)]
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
        if name == "frame loop":  # not cumulative: replay's read + filter + decode
            print(f"  {'(frame by frame: read + filter + decode':39} {previous:6.2f})")
            print(f"  {'frame loop (read + filter + decode in place)':44} {total:6.2f}")
            previous = total
            continue
        print(f"  {name:10} {total - previous:6.2f}")
        previous = total
    print(f"  {'total':10} {cumulative[-1]:6.2f}  ({1e6 / cumulative[-1]:,.0f} frames/s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
