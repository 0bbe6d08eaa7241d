"""Capture on an interface for a while and print what the detectors would get.

``python -m tests.linux.net.capture_probe IFACE SECONDS [ring|recv] [raw]`` (run inside a
namespace): prints ``READY`` once the filtered socket is bound, then one JSON object per
decoded packet (``raw``: per captured frame, ``{"raw": hex}``, with UDP sampling off so
the kernel's verdicts are deterministic), then a final ``{"stats": ...}`` line with the
kernel's counters.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import orjson

from edgeguard.net.capture import RecvCapture, RingCapture, is_cooked, open_capture_socket
from edgeguard.net.decode import DecodeCounters, decode
from edgeguard.net.filter import FilterSpec, build_filter


def main() -> int:
    iface, seconds = sys.argv[1], float(sys.argv[2])
    ring = len(sys.argv) < 4 or sys.argv[3] == "ring"
    raw = len(sys.argv) > 4 and sys.argv[4] == "raw"
    cooked = is_cooked(iface)  # tun/WireGuard/PPP or "any": no Ethernet header
    spec = FilterSpec(udp_sample=0, cooked=cooked) if raw else FilterSpec(cooked=cooked)
    sock = open_capture_socket(iface, build_filter(spec), ring=ring, cooked=cooked)
    cap: RecvCapture | RingCapture = (
        RingCapture(sock, blocks=4, retire_ms=20, cooked=cooked) if ring
        else RecvCapture(sock, cooked=cooked))
    counters = DecodeCounters()
    out = sys.stdout.buffer
    rows: list[bytes] = []  # written at the end: a full pipe must not stall the capture
    frames = 0

    def sink(data: bytes, ts: float, wire: int, vlan: int | None) -> None:
        nonlocal frames
        frames += 1
        if raw:
            rows.append(orjson.dumps({"raw": bytes(data).hex(), "wire": wire}))
            return
        pkt = decode(data, ts, wire, counters)
        if pkt is not None:
            row = dataclasses.asdict(pkt)
            row["payload"] = pkt.payload[:32].hex()
            rows.append(orjson.dumps(row))

    print("READY", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cap.wait(0.1):
            cap.drain(sink)
    time.sleep(0.1)
    cap.drain(sink)
    stats = cap.read_stats()
    for row in rows:
        out.write(row + b"\n")
    out.write(orjson.dumps({"stats": {"frames": frames, "kernel_packets": stats.packets,
                                      "kernel_drops": stats.drops,
                                      "decoded": counters.decoded,
                                      "malformed": counters.malformed}}) + b"\n")
    out.flush()
    cap.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
