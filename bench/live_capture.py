"""Live capture under tcpreplay --topspeed: kernel drops, edgeguard vs nfstream.

    PYTHONPATH=. /work/venv/bin/python bench/live_capture.py [--pcap FILE] [--loops N]

Two throwaway namespaces joined by a veth (egc- prefix, removed at the end); tcpreplay
pushes the capture at its top speed into one end while a capturer runs on the other:
* edgeguard with the TPACKET_V3 ring and with recvmsg (filter in the kernel, decode and
  all detectors in Python, and load shedding of floods in progress, as the capture
  worker does), and with the ring but no shedding (``ring-noshed``);
* nfstream on the same interface (its own libpcap capture, nDPI flow metering).
Printed side by side: frames sent, frames the capturer saw, kernel drops, wall time.
Bounded by --loops (default 3) and a 60 s timeout per run. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TCPREPLAY = "/usr/bin/tcpreplay"


def child_edgeguard(iface: str, seconds: float, backend: str) -> None:
    from edgeguard.clock import SystemClock  # noqa: PLC0415
    from edgeguard.net.capture import (  # noqa: PLC0415
        RecvCapture,
        RingCapture,
        open_capture_socket,
    )
    from edgeguard.net.config import NetworkConfig  # noqa: PLC0415
    from edgeguard.net.filter import build_filter  # noqa: PLC0415
    from edgeguard.net.inspect import Inspector, build_chain, filter_spec  # noqa: PLC0415
    from edgeguard.net.shed import Shedder  # noqa: PLC0415
    from edgeguard.policy.types import ByteSize  # noqa: PLC0415

    ring_mb = os.environ.get("EDGEGUARD_BENCH_RING_MB")
    cfg = NetworkConfig() if ring_mb is None else NetworkConfig(ring_size=ByteSize(
        int(ring_mb) << 20))
    ring = backend.startswith("ring")
    sock = open_capture_socket(iface, build_filter(filter_spec(cfg)), ring=ring,
                               rcvbuf=int(cfg.ring_size))
    cap: RingCapture | RecvCapture = RingCapture(sock, blocks=int(cfg.ring_size) >> 20) if ring \
        else RecvCapture(sock, snap=cfg.snap_length)
    inspector = Inspector(build_chain(cfg, SystemClock()))
    shedder = Shedder(sock, filter_spec(cfg)) if not backend.endswith("noshed") else None
    findings = 0
    reported: set[tuple[str, str, str]] = set()
    verbose = bool(os.environ.get("EDGEGUARD_BENCH_VERBOSE"))

    def sink(data: bytes, ts: float, wire: int, vlan: int | None) -> None:
        nonlocal findings
        found = inspector.frame(data, ts, wire)
        if found:
            findings += len(found)
            reported.update((f.kind, f.subtype, f.source.ip or f.source.mac or "")
                            for f in found if f.source is not None)
            if verbose:
                for f in found:
                    print(f"# {f.message}", file=sys.stderr, flush=True)
            if shedder is not None:  # as the capture worker does
                shedder.update(inspector.chain)

    print("READY", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cap.wait(0.05):
            cap.drain(sink)
    cap.drain(sink)
    stats = cap.read_stats()
    print(json.dumps({"seen": inspector.frames, "kernel_passed": stats.packets,
                      "kernel_drops": stats.drops, "findings": findings,
                      "shed_swaps": shedder.swaps if shedder else 0,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024),
                      "reported": sorted(reported)}), flush=True)


def child_nfstream(iface: str, seconds: float) -> None:
    from nfstream import NFStreamer  # noqa: PLC0415

    print("READY", flush=True)
    packets = 0
    streamer = NFStreamer(source=iface, idle_timeout=1, active_timeout=int(seconds) + 5,
                          promiscuous_mode=True, snapshot_length=256)
    start = time.monotonic()

    def stop(_sig: int, _frame: object) -> None:
        raise TimeoutError  # the streamer waits for a packet to expire idle flows

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(seconds) + 5)
    try:
        for flow in streamer:
            packets += flow.bidirectional_packets
            if time.monotonic() - start > seconds:
                break
    except TimeoutError:
        pass
    signal.alarm(0)
    print(json.dumps({"seen": packets, "kernel_passed": None, "kernel_drops": None,
                      "findings": None}), flush=True)


def run_one(net: object, tool: str, pcap: Path, loops: int, seconds: float) -> dict[str, object]:
    from tests.linux.net.netns import Lab  # noqa: PLC0415

    assert isinstance(net, Lab)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, net.veth_b,
           str(seconds)]
    proc = net.popen(net.b, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    time.sleep(1.0 if tool == "nfstream" else 0.2)
    start = time.monotonic()
    replay = net.run(net.a, TCPREPLAY, "--topspeed", f"--loop={loops}", "-i", net.veth_a,
                     str(pcap), timeout=120, check=False)
    sent_s = time.monotonic() - start
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if os.environ.get("EDGEGUARD_BENCH_VERBOSE"):
        print(err, file=sys.stderr)
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {
        "error": err[-300:]}
    sent = 0
    rate = ""
    for line in replay.stdout.splitlines():
        if "Actual:" in line:
            sent = int(line.split("Actual:")[1].split()[0])
        if "Rated:" in line:
            rate = line.split("Rated:")[1].split(",")[1].strip()
    result.update({"tool": tool, "sent": sent, "replay_s": round(sent_s, 2), "rate": rate})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "IFACE", "SECONDS"))
    parser.add_argument("--pcap", type=Path)
    parser.add_argument("--loops", type=int, default=3)
    parser.add_argument("--tools", default="ring,ring-noshed,recv,nfstream")
    parser.add_argument("--ring-mb", type=int,
                        help="ring_size of the edgeguard capturers, MiB (default: the "
                        "policy's default)")
    args = parser.parse_args()
    if args.child:
        tool, iface, seconds = args.child
        if tool == "nfstream":
            child_nfstream(iface, float(seconds))
        else:
            child_edgeguard(iface, float(seconds), tool)
        return 0
    if args.ring_mb:
        os.environ["EDGEGUARD_BENCH_RING_MB"] = str(args.ring_mb)  # for the children
    from tests.linux.net.netns import lab  # noqa: PLC0415
    from tests.unit.net.netdata import CORPUS  # noqa: PLC0415

    pcap = args.pcap or CORPUS / "floods_dev.pcap"
    print(f"tcpreplay --topspeed --loop={args.loops} {pcap.name} into a veth; capture on the "
          "peer")
    print(f"{'capturer':16} {'sent':>8} {'rate':>14} {'seen':>8} {'kernel pass':>11} "
          f"{'kernel drops':>12} {'findings':>8} {'sheds':>5}")
    with lab("bench") as net:
        for tool in args.tools.split(","):
            seconds = 8.0 + args.loops * 2
            r = run_one(net, tool, pcap, args.loops, seconds)
            print(f"{tool:16} {r.get('sent', 0):>8} {r.get('rate', ''):>14} "
                  f"{r.get('seen', '-')!s:>8} {r.get('kernel_passed', '-')!s:>11} "
                  f"{r.get('kernel_drops', '-')!s:>12} {r.get('findings', '-')!s:>8} "
                  f"{r.get('shed_swaps', '-')!s:>5}"
                  + (f"  {r['error']}" if "error" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
