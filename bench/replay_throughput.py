"""Replay throughput (packets/s) on the corpus captures: edgeguard vs nfstream vs dpkt.

    PYTHONPATH=. /work/venv/bin/python bench/replay_throughput.py [FILE.pcap ...] [--repeat N]

For each file, side by side:
* ``edgeguard replay``: read + cBPF filter (kernel semantics) + decode + all detectors;
* ``edgeguard filter``: read + filter only (what the kernel would spare Python);
* ``nfstream``: NFStreamer over the file (flow metering with nDPI, its defaults);
* ``dpkt``: dpkt.pcap.Reader + dpkt.ethernet.Ethernet per packet (decode only).
Best of ``--repeat`` runs (default 1). Goal: edgeguard replay >= 5x nfstream.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgeguard.net.bpfjit import compile_program  # noqa: E402
from edgeguard.net.config import NetworkConfig  # noqa: E402
from edgeguard.net.filter import build_filter  # noqa: E402
from edgeguard.net.inspect import filter_spec  # noqa: E402
from edgeguard.net.pcapfile import read_capture  # noqa: E402
from edgeguard.net.replay import replay_file  # noqa: E402
from tests.unit.net.netdata import CORPUS  # noqa: E402

DEFAULT_FILES = ("scans.pcap", "benign.pcap", "bittorrent.pcap", "floods_dev.pcap")


def run_edgeguard(path: Path) -> int:
    result = replay_file(path, NetworkConfig())
    return result.counters["file_frames"]


def run_filter(path: Path) -> int:
    keep = compile_program(build_filter(filter_spec(NetworkConfig())))
    n = 0
    for frame in read_capture(path):
        keep(frame.data, frame.wire_len)
        n += 1
    return n


def run_nfstream(path: Path) -> int:
    from nfstream import NFStreamer  # noqa: PLC0415

    return sum(flow.bidirectional_packets for flow in NFStreamer(source=str(path)))


def run_dpkt(path: Path) -> int:
    import dpkt  # noqa: PLC0415

    n = 0
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            _ = eth.data
            n += 1
    return n


def best(fn: Callable[[Path], int], path: Path, repeat: int) -> tuple[int, float]:
    times = []
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(path)
        times.append(time.perf_counter() - start)
    return count, min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    files = args.files or [CORPUS / name for name in DEFAULT_FILES]
    tools: dict[str, Callable[[Path], int]] = {
        "edgeguard replay": run_edgeguard, "edgeguard filter": run_filter,
        "nfstream": run_nfstream, "dpkt": run_dpkt}
    print(f"{'file':22} {'packets':>8} " + " ".join(f"{t:>17}" for t in tools)
          + "   replay/nfstream")
    totals = dict.fromkeys(tools, 0.0)
    total_packets = 0
    for path in files:
        packets = sum(1 for _ in read_capture(path))
        total_packets += packets
        cells = []
        rates: dict[str, float] = {}
        for name, fn in tools.items():
            try:
                _, seconds = best(fn, path, args.repeat)
            except ImportError as exc:
                cells.append(f"{'n/a (' + exc.name + ')':>17}" if exc.name else f"{'n/a':>17}")
                continue
            totals[name] += seconds
            rates[name] = packets / seconds
            cells.append(f"{rates[name]:>13,.0f} p/s")
        ratio = (f"{rates['edgeguard replay'] / rates['nfstream']:.1f}x"
                 if "nfstream" in rates else "n/a")
        print(f"{path.name:22} {packets:>8} " + " ".join(cells) + f"   {ratio:>8}")
    overall = {name: total_packets / t for name, t in totals.items() if t}
    print(f"{'all':22} {total_packets:>8} " + " ".join(
        f"{overall.get(n, 0):>13,.0f} p/s" for n in tools) + (
        f"   {overall['edgeguard replay'] / overall['nfstream']:.1f}x"
        if "nfstream" in overall else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
