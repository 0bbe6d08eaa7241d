"""Memory under a spoofed-source SYN flood, while a scan runs alongside.

    PYTHONPATH=. /work/venv/bin/python bench/capture_rss.py [--sources N] [--keep]

Writes a pcap (in a temporary directory) of N SYNs (default 200000; the issue's figure
is 1000000) from N distinct random source addresses to one server, with the nmap -sS
scan of the corpus's scans.pcap (10.99.0.21, 1000 ports) interleaved in the middle, then
runs the replay path (filter, decode, every detector: the same code the capture worker
runs) and prints RSS at steady state (benign.pcap) and at the end of the flood, the
detectors' table sizes and evictions, and whether the scan was still found.
Goal: RSS <= 200 MB and the scan found.
"""

from __future__ import annotations

import argparse
import random
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgeguard.events import Finding  # noqa: E402
from edgeguard.net.config import NetworkConfig  # noqa: E402
from edgeguard.net.inspect import Inspector, build_chain  # noqa: E402
from edgeguard.net.pcapfile import read_capture  # noqa: E402
from edgeguard.net.replay import PacketClock, replay_file  # noqa: E402
from tests.unit.net.netdata import CORPUS  # noqa: E402

SERVER = bytes([10, 99, 0, 10])
FLOOD_MAC = bytes.fromhex("0299000000aa")
SERVER_MAC = bytes.fromhex("02990000000a")


def rss_mb(field: str = "VmRSS") -> float:
    """``VmRSS`` (all resident pages) or ``RssAnon`` (heap: without the mmap'd pcap file,
    which a live capture does not have)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def replay_sampled(path: Path, cfg: NetworkConfig) -> tuple[list[Finding], dict[str, int],
                                                           float]:
    """The replay path (filter, decode, detectors) with the anonymous RSS sampled every
    20000 frames; returns findings, counters and the peak."""
    inspector = Inspector.for_replay(cfg, build_chain(cfg, PacketClock()))
    findings: list[Finding] = []
    peak = 0.0
    for n, frame in enumerate(read_capture(path)):
        findings.extend(inspector.frame(frame.data, frame.ts, frame.wire_len))
        if n % 20000 == 0:
            peak = max(peak, rss_mb("RssAnon"))
    findings.extend(inspector.chain.finish())
    return findings, inspector.counters(), max(peak, rss_mb("RssAnon"))


def syn(src: bytes, sport: int, ts_us: int) -> bytes:
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, src, SERVER)
    tcp = struct.pack(">HHIIBBHHH", sport, 80, random.getrandbits(32), 0, 0x50, 0x02, 1024,
                      0, 0)
    frame = SERVER_MAC + FLOOD_MAC + b"\x08\x00" + ip + tcp
    return struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(frame),
                       len(frame)) + frame


def write_flood(path: Path, sources: int, rate: int) -> None:
    """Flood at ``rate``/s; the corpus's -sS scan frames are moved into the middle."""
    scan = [f for f in read_capture(CORPUS / "scans.pcap")
            if f.data[26:30] == bytes([10, 99, 0, 21]) or f.data[30:34] == bytes([10, 99, 0, 21])]
    start_us = 1_800_000_000 * 1_000_000
    mid = sources // 2
    scan_base = scan[0].ts
    rng = random.Random(7)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(sources):
            ts = start_us + i * 1_000_000 // rate
            fh.write(syn(rng.getrandbits(32).to_bytes(4, "big"), rng.randrange(1024, 65535), ts))
            if i == mid:
                for frame in scan:
                    t = ts + int((frame.ts - scan_base) * 1_000_000)
                    fh.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000,
                                         len(frame.data), frame.wire_len) + frame.data)


def live_run(pcap: Path) -> dict[str, Any]:
    """The flood through a veth into the live capture path (bench/live_capture.py)."""
    from bench.live_capture import run_one  # noqa: PLC0415
    from tests.linux.net.netns import lab  # noqa: PLC0415

    with lab("rss") as net:
        return run_one(net, "ring", pcap, 1, 30.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=20_000, help="flood packets per second")
    parser.add_argument("--live", action="store_true",
                        help="also push the flood with tcpreplay --topspeed into a veth and "
                        "capture it as the worker does (ring, shedding): its peak RSS, ring "
                        "included")
    args = parser.parse_args()
    cfg = NetworkConfig()
    print(f"baseline RSS (imports): {rss_mb():.0f} MB")
    replay_file(CORPUS / "benign.pcap", cfg)
    print(f"steady state (after benign.pcap): {rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory(prefix="egc-rss-") as tmp:
        path = Path(tmp) / "flood.pcap"
        write_flood(path, args.sources, args.rate)
        print(f"flood pcap: {args.sources} spoofed sources, {path.stat().st_size >> 20} MiB")
        start = time.perf_counter()
        findings, counters, peak_anon = replay_sampled(path, cfg)
        took = time.perf_counter() - start
        live = live_run(path) if args.live else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scans = [f for f in findings if f.kind == "scan" and f.source is not None
             and f.source.ip == "10.99.0.21"]
    floods = [f for f in findings if f.kind == "flood"]
    print(f"after the flood: RSS {rss_mb():.0f} MB (heap {rss_mb('RssAnon'):.0f} MB); peak "
          f"heap {peak_anon:.0f} MB, peak RSS incl. the mmap'd pcap {peak:.0f} MB "
          f"({args.sources / took:,.0f} packets/s)")
    kinds = ", ".join(sorted({f.subtype for f in scans}))
    print(f"scan by 10.99.0.21 found: {bool(scans)} ({kinds})")
    print(f"flood findings: {len(floods)} ({', '.join(sorted({f.subtype for f in floods}))})")
    evictions = {k: v for k, v in counters.items() if "evict" in k and v}
    print(f"evictions: {evictions}")
    if live is not None:
        live_scan = any(k == "scan" and who == "10.99.0.21" for k, _, who in live["reported"])
        print(f"live (tcpreplay --topspeed, ring {int(cfg.ring_size) >> 20} MiB, shedding): "
              f"sent {live['sent']}, kernel passed {live['kernel_passed']}, drops "
              f"{live['kernel_drops']}, worker peak RSS {live['peak_rss_mb']} MB (ring "
              f"included), scan found: {live_scan}")
    ok = peak_anon <= 200 and bool(scans)
    print(f"goal: heap <= 200 MB (what a capture worker holds) and scan found -> "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
