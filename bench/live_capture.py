"""Live capture under tcpreplay: kernel drops and CPU per frame, edgeguard vs nfstream.

    PYTHONPATH=. .venv/bin/python bench/live_capture.py [--pcap FILE] [--loops N]
        [--ring-mb 8] [--pps 20000,40000] [--workers 1,2] [--tools ring-noshed]

Two throwaway namespaces joined by a veth (egc- prefix, removed at the end); tcpreplay
pushes the capture at its top speed into one end while a capturer runs on the other:
* the capture worker itself (``edgeguard.net.worker.Worker``: filter in the kernel, its
  batched read loop (ring walk compiled), decode and detectors, load shedding of floods
  in progress) with the TPACKET_V3 ring and with recvmsg, and with the ring but no
  shedding (``ring-noshed``: every frame the filter passes is read, which is what
  measures the per-frame cost); ``--workers N`` runs N of them, each owning a share of
  the addresses as with ``capture_workers: N``;
* nfstream on the same interface (its own libpcap capture, nDPI flow metering), when
  installed.
Printed side by side: frames sent, frames the capturer saw, frames the kernel filter
passed, kernel drops, passed frames per second of sending, the process's CPU time
(start-up included) and CPU microseconds of the read loop per frame it read (idle
polling included: negligible at these rates).
``--pps`` sends at fixed rates instead of ``--topspeed``: the highest rate with 0 drops
is the sustained capacity. ``--baseline DIR`` runs the same capturers from another
checkout too (its own .venv, e.g. the main branch), interleaved, so before and after
share the machine's mood. Bounded by --loops (default 3) and a timeout per run. Needs
root.

``--offline`` (no root, no kernel): the frames of the capture that pass the filter, laid
out in TPACKET_V3 blocks in anonymous memory as the kernel lays them out, read by the
worker's own loop (ring walk, decode, detectors: ``Worker.read``'s calls) and, side by
side, the same frames decoded and fed as ``replay`` does (no ring); best of
``--repeat`` passes, CPU microseconds per frame. The difference is the live path's own
cost; the "walk" row is the ring walk alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import struct

    from edgeguard.net.config import NetworkConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TCPREPLAY = "/usr/bin/tcpreplay"


def child_edgeguard(iface: str, seconds: float, backend: str) -> None:
    """The capture worker itself (edgeguard.net.worker.Worker, its read loop and GC
    settings), stopped by EOF on its control socket after ``seconds``; prints its
    counters and CPU time. ``backend``: ring | ring-noshed | recv, with ``@I/N`` for
    worker I of N (each owns a share of the addresses, as in the daemon)."""
    import socket  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from edgeguard.net.fanout import Share  # noqa: PLC0415
    from edgeguard.net.worker import Worker, WorkerSpec, tune_gc  # noqa: PLC0415

    cpu_start = time.process_time()  # (imports above and the interpreter not included)
    kind, _, part = backend.partition("@")
    per_frame = kind.endswith("-perframe")
    kind = kind.removesuffix("-perframe")
    share = None
    if part:
        index, count = (int(x) for x in part.split("/"))
        share = Share(index, count) if count > 1 else None
    cfg = _config(noshed=kind.endswith("noshed"))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker = Worker(WorkerSpec(iface, cfg, ring=kind.startswith("ring"), share=share), ours)
    ours.setblocking(False)
    reported: set[tuple[str, str, str]] = set()

    def listen() -> None:  # the daemon's end: read reports until the run is over
        theirs.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                report = pickle.loads(theirs.recv(1 << 20))  # our own worker
            except TimeoutError:
                continue
            reported.update((f.kind, f.subtype, f.source.ip or f.source.mac or "")
                            for f in report.findings if f.source is not None)
        theirs.shutdown(socket.SHUT_WR)  # EOF: the worker's run() returns

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    if per_frame:
        def read_per_frame() -> int:
            def sink(data: bytes, ts: float, wire: int, vlan: int | None) -> None:
                found = worker.inspector.frame(data, ts, wire, vlan)
                if found:
                    worker._queue(found)  # the old loop, for comparison
                    worker.shedder.update(worker.shed_source)
            return worker.capture.drain(sink)
        worker.read = read_per_frame  # type: ignore[method-assign]
    else:
        tune_gc()
    print("READY", flush=True)
    run_start = time.process_time()
    worker.run()
    run_cpu = time.process_time() - run_start
    worker.read()
    reported.update((f.kind, f.subtype, f.source.ip or f.source.mac or "")
                    for f in worker.outbox if f.source is not None)  # not sent before EOF
    counters = worker.counters()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seen": counters["frames"], "kernel_passed": counters["kernel_packets"],
                      "kernel_drops": counters["kernel_drops"],
                      "findings": counters["findings"], "shed_swaps": counters["shed_swaps"],
                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                      "cpu_setup_s": round(run_start - cpu_start, 3),
                      "cpu_run_s": round(run_cpu, 3),
                      "peak_rss_mb": round(usage.ru_maxrss / 1024),
                      "reported": sorted(reported)}), flush=True)


def offline(pcap: Path, loops: int, repeat: int) -> None:
    """Print the CPU per frame of the worker's read loop over ring blocks in memory vs
    replay's loop over the same frames (see the module docstring)."""
    import gc  # noqa: PLC0415
    import mmap  # noqa: PLC0415
    import struct  # noqa: PLC0415
    from collections.abc import Callable  # noqa: PLC0415

    import edgeguard.net  # noqa: PLC0415
    from edgeguard.clock import SystemClock  # noqa: PLC0415
    from edgeguard.net.bpfjit import compile_program  # noqa: PLC0415
    from edgeguard.net.capture import RingCapture  # noqa: PLC0415
    from edgeguard.net.filter import build_filter  # noqa: PLC0415
    from edgeguard.net.inspect import Inspector, build_chain, filter_spec  # noqa: PLC0415
    from edgeguard.net.linktype import SUPPORTED  # noqa: PLC0415
    from edgeguard.net.packet import Packet  # noqa: PLC0415
    from edgeguard.net.pcapfile import ReaderCounters, read_capture  # noqa: PLC0415
    from edgeguard.net.worker import PACKET_BATCH, tune_gc  # noqa: PLC0415

    cfg = _config(noshed=True)
    keep = compile_program(build_filter(filter_spec(cfg)))
    frames: list[tuple[float, int, bytes]] = []
    for _ in range(loops):
        for ts, wire, data, _link in read_capture(pcap, ReaderCounters(), SUPPORTED):
            snap = keep(data, wire)
            if snap:
                frames.append((ts, wire, data[:snap]))
    block_size = 1 << 20
    image = _ring_image(frames, block_size, struct.Struct("=IIIIIIHH4xH"))
    blocks = len(image) // block_size

    class _NoSocket:
        def close(self) -> None:
            pass

    def ring() -> RingCapture:
        r = RingCapture.__new__(RingCapture)
        r.sock = _NoSocket()  # type: ignore[assignment]
        r.cooked, r.block_size, r.blocks = False, block_size, blocks
        r.map = mmap.mmap(-1, len(image))
        r.map[:] = image
        r._next, r._block = 0, None
        return r

    def live(detect: bool) -> float:
        capture = ring()
        inspector = Inspector(build_chain(cfg, SystemClock()))
        feed = inspector.chain.feed
        packets: list[Packet] = []
        start = time.process_time()
        while capture.drain_packets(inspector, packets, PACKET_BATCH):
            if detect:
                for pkt in packets:
                    feed(pkt)
            packets.clear()
        return time.process_time() - start

    def replay(detect: bool) -> float:
        inspector = Inspector(build_chain(cfg, SystemClock()))
        feed, to_packet = inspector.chain.feed, inspector.packet
        batch: list[Packet] = []
        start = time.process_time()
        for ts, wire, data in frames:
            pkt = to_packet(data, ts, wire, None)
            if pkt is not None:
                batch.append(pkt)
                if len(batch) >= PACKET_BATCH:
                    if detect:
                        for p in batch:
                            feed(p)
                    batch.clear()
        if detect:
            for p in batch:
                feed(p)
        return time.process_time() - start

    def walk() -> float:
        capture = ring()
        start = time.process_time()
        capture.drain(lambda _d, _t, _w, _v: None)
        return time.process_time() - start

    collecting = [0.0, 0.0]  # CPU in the garbage collector; when the running one began

    def timed(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.process_time()
        else:
            collecting[0] += time.process_time() - collecting[1]

    def best_of(fn: Callable[[], float]) -> tuple[float, float]:
        runs = []
        for _ in range(repeat):
            gc.collect()
            collecting[0] = 0.0
            runs.append((fn(), collecting[0]))
        return min(runs)

    tune_gc()
    gc.callbacks.append(timed)
    print(f"{pcap.name} x{loops}: {len(frames)} frames pass the filter, {blocks} ring blocks; "
          f"{'compiled' if edgeguard.net.compiled() else 'pure Python'}; CPU us per frame "
          f"(of which in the garbage collector), best of {repeat}")
    rows: list[tuple[str, Callable[[], float]]] = [
        ("ring walk alone", walk),
        ("ring: walk + decode", lambda: live(False)),
        ("replay: decode", lambda: replay(False)),
        ("ring: walk + decode + detect", lambda: live(True)),
        ("replay: decode + detect", lambda: replay(True))]
    for label, fn in rows:
        cpu, in_gc = best_of(fn)
        print(f"  {label:30} {cpu / len(frames) * 1e6:6.2f} ({in_gc / len(frames) * 1e6:.2f})",
              flush=True)


def _ring_image(frames: list[tuple[float, int, bytes]], block_size: int,
                header: struct.Struct) -> bytes:
    """TPACKET_V3 blocks holding ``frames`` (ready for user space) as the kernel fills
    them: 48-byte block header, each frame behind its tpacket3_hdr + sockaddr_ll."""
    import struct  # noqa: PLC0415

    out = bytearray()
    block = bytearray(block_size)
    off, count, last = 48, 0, 0

    def close() -> None:
        struct.pack_into("=I", block, last, 0)  # the last frame's next offset
        struct.pack_into("=IIII", block, 8, 1, count, 48, off)  # TP_STATUS_USER
        out.extend(block)

    for ts, wire, data in frames:
        mac = 82  # TPACKET_ALIGN(68 + 16) - 14, as the kernel places an Ethernet frame
        size = (mac + len(data) + 15) // 16 * 16
        if off + size > block_size:
            close()
            block[:] = bytes(block_size)
            off, count = 48, 0
        sec = int(ts)
        header.pack_into(block, off, size, sec, round((ts - sec) * 1e9), len(data), wire, 0,
                         mac, mac + 14, 0)
        block[off + mac:off + mac + len(data)] = data
        last, off, count = off, off + size, count + 1
    if count:
        close()
    return bytes(out)


def _config(*, noshed: bool) -> NetworkConfig:
    from edgeguard.net.config import NetworkConfig  # noqa: PLC0415
    from edgeguard.policy.types import ByteSize  # noqa: PLC0415

    ring_mb = os.environ.get("EDGEGUARD_BENCH_RING_MB")
    cfg = NetworkConfig() if ring_mb is None else NetworkConfig(ring_size=ByteSize(
        int(ring_mb) << 20))
    return dataclasses.replace(cfg, filter_shed_sample=0) if noshed else cfg


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


def run_one(net: object, tool: str, pcap: Path, loops: int, seconds: float,
            pps: int | None = None, workers: int = 1,
            checkout: Path = ROOT) -> dict[str, object]:
    """One capturer (``workers`` processes of it, run from ``checkout``) while tcpreplay
    sends ``pcap``."""
    from tests.linux.net.netns import Lab  # noqa: PLC0415

    assert isinstance(net, Lab)
    names = [tool] if tool == "nfstream" or workers == 1 else [
        f"{tool}@{i}/{workers}" for i in range(workers)]
    python = sys.executable if checkout == ROOT else str(checkout / ".venv" / "bin" / "python")
    procs = [net.popen(net.b, [python, str(checkout / "bench" / "live_capture.py"), "--child",
                               name, net.veth_b, str(seconds)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in names]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
    time.sleep(1.0 if tool == "nfstream" else 0.2)
    speed = [f"--pps={pps}"] if pps else ["--topspeed"]
    start = time.monotonic()
    replay = net.run(net.a, TCPREPLAY, *speed, f"--loop={loops}", "-i", net.veth_a,
                     str(pcap), timeout=seconds + 60, check=False)
    sent_s = time.monotonic() - start
    results = [_collect(proc, seconds) for proc in procs]
    result: dict[str, object] = dict(results[0])
    if len(results) > 1:  # sums over the workers; CPU per frame over all of them
        for key in ("seen", "kernel_passed", "kernel_drops", "findings", "cpu_s", "cpu_run_s"):
            result[key] = round(sum(float(str(r.get(key, 0))) for r in results), 3)
        result["per_worker_passed"] = [r.get("kernel_passed") for r in results]
    sent = 0
    rate = ""
    for line in replay.stdout.splitlines():
        if "Actual:" in line:
            sent = int(line.split("Actual:")[1].split()[0])
        if "Rated:" in line:
            rate = line.split("Rated:")[1].split(",")[1].strip()
    result.update({"tool": tool, "sent": sent, "replay_s": round(sent_s, 2), "rate": rate})
    return result


def _collect(proc: subprocess.Popen[str], seconds: float) -> dict[str, object]:
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if os.environ.get("EDGEGUARD_BENCH_VERBOSE"):
        print(err, file=sys.stderr)
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-300:]}


def _row(label: str, r: dict[str, object]) -> str:
    passed = r.get("kernel_passed")  # (PACKET_STATISTICS counts the dropped ones too)
    seen = r.get("seen")
    cpu = r.get("cpu_run_s")
    per_frame = (f"{float(str(cpu)) / float(str(seen)) * 1e6:.1f}"
                 if isinstance(seen, (int, float)) and seen and cpu is not None else "-")
    per_s = (f"{float(str(passed)) / float(str(r['replay_s'])):,.0f}"
             if isinstance(passed, (int, float)) and r.get("replay_s") else "-")
    return (f"{label:22} {r.get('sent', 0)!s:>8} {r.get('rate', '')!s:>14} "
            f"{r.get('seen', '-')!s:>8} {passed if passed is not None else '-'!s:>9} "
            f"{r.get('kernel_drops', '-')!s:>7} {per_s:>9} {r.get('cpu_s', '-')!s:>6} "
            f"{per_frame:>7} {r.get('findings', '-')!s:>5} {r.get('shed_swaps', '-')!s:>5}"
            + (f"  {r['error']}" if "error" in r else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "IFACE", "SECONDS"))
    parser.add_argument("--pcap", type=Path)
    parser.add_argument("--loops", type=int, default=3)
    parser.add_argument("--tools", default="ring,ring-noshed,recv,nfstream")
    parser.add_argument("--ring-mb", type=int,
                        help="ring_size of the edgeguard capturers, MiB (default: the "
                        "policy's default)")
    parser.add_argument("--pps", default="",
                        help="comma-separated tcpreplay --pps rates (default: --topspeed)")
    parser.add_argument("--workers", default="1",
                        help="comma-separated worker counts (each owns a share of the "
                        "addresses, as with capture_workers)")
    parser.add_argument("--offline", action="store_true",
                        help="no root: the worker's read loop over ring blocks in memory "
                        "vs replay's loop (see above)")
    parser.add_argument("--repeat", type=int, default=5, help="--offline: passes per row")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run the capturers of the checkout in DIR (its .venv)")
    args = parser.parse_args()
    if args.offline:
        from tests.unit.net.netdata import CORPUS  # noqa: PLC0415

        offline(args.pcap or CORPUS / "floods_dev.pcap", args.loops, args.repeat)
        return 0
    if args.child:
        tool, iface, seconds = args.child
        if tool == "nfstream":
            child_nfstream(iface, float(seconds))
        else:
            child_edgeguard(iface, float(seconds), tool)
        return 0
    if args.ring_mb:
        os.environ["EDGEGUARD_BENCH_RING_MB"] = str(args.ring_mb)  # for the children
    checkouts = [ROOT]
    if args.baseline:
        checkouts.append(args.baseline.resolve())
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the other tree as it is
    from tests.linux.net.netns import lab  # noqa: PLC0415
    from tests.unit.net.netdata import CORPUS  # noqa: PLC0415

    pcap = args.pcap or CORPUS / "floods_dev.pcap"
    rates: list[int | None] = [int(x) for x in args.pps.split(",") if x] or [None]
    counts = [int(x) for x in args.workers.split(",")]
    print(f"tcpreplay --loop={args.loops} {pcap.name} into a veth; capture on the peer; "
          f"ring {args.ring_mb or 'default'} MiB. passed/s: kernel-passed frames over the "
          "send time (dropped ones included, as the kernel counts them); CPU: the whole process "
          "(start-up included); us/fr: CPU of the read loop per frame read")
    print(f"{'capturer':22} {'sent':>8} {'rate':>14} {'seen':>8} {'passed':>9} {'drops':>7} "
          f"{'passed/s':>9} {'CPU s':>6} {'us/fr':>7} {'finds':>5} {'sheds':>5}")
    with lab("bench") as net:
        for tool in args.tools.split(","):
            for workers in ([1] if tool == "nfstream" else counts):
                for pps in rates:
                    seconds = 8.0 + args.loops * 2 + (
                        _pcap_frames(pcap) * args.loops / pps if pps else 0)
                    for checkout in checkouts:
                        r = run_one(net, tool, pcap, args.loops, seconds, pps, workers,
                                    checkout)
                        label = tool + (f" x{workers}" if workers > 1 else "") + (
                            f" @{pps // 1000}k" if pps else "") + (
                            "" if checkout == ROOT else f" [{checkout.name}]")
                        print(_row(label, r), flush=True)
    return 0


def _pcap_frames(pcap: Path) -> int:
    """Frames in a capture file (to size a rate-limited run)."""
    from edgeguard.net.linktype import SUPPORTED  # noqa: PLC0415
    from edgeguard.net.pcapfile import ReaderCounters, read_capture  # noqa: PLC0415

    return sum(1 for _ in read_capture(pcap, ReaderCounters(), SUPPORTED))


if __name__ == "__main__":
    sys.exit(main())
