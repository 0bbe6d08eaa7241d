"""The capture worker: its own process per interface (and per fanout member).

It opens the filtered AF_PACKET socket, decodes, runs the detectors, and sends
:class:`WorkerReport` messages (findings and counters, pickled) to the daemon over a
``SOCK_SEQPACKET`` socket pair. A packet flood therefore costs this process CPU and, at
worst, kernel drops (counted), but never delays the daemon's event loop.

Backpressure is bounded at every step: the kernel queue/ring (its drops are counted by
``PACKET_STATISTICS``), the outbox of unsent findings (``OUTBOX_LIMIT``; overflow is
counted as ``findings_dropped``), and the socket pair's buffer (sends never block).

Run as ``python -m edgeguard.net.worker FD``: the first message on FD is a pickled
:class:`WorkerSpec`; later messages are :class:`Reconfigure` or :class:`Forget`; EOF
means stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import select
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace

from edgeguard.clock import SystemClock
from edgeguard.events import Finding
from edgeguard.net.capture import RecvCapture, RingCapture, is_cooked, open_capture_socket
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.chain import DetectorChain
from edgeguard.net.fanout import Share, share_filter
from edgeguard.net.inspect import Chain, Inspector, build_chain, filter_spec
from edgeguard.net.packet import Packet
from edgeguard.net.shed import Shedder, ShedSource

__all__ = ["Forget", "Reconfigure", "WorkerReport", "WorkerSpec", "main", "tune_gc"]

OUTBOX_LIMIT = 10_000
#: Frames decoded before the packets are fed to the detectors (``replay`` uses as many):
#: each loop keeps its code and tables in the CPU caches, and few packets are alive at
#: once (a whole 1 MiB ring block is thousands: they outgrew the caches and every
#: young collection of the garbage collector walked them).
PACKET_BATCH = 256
#: Batches read before the worker looks at its control socket and timers again (64 k
#: frames: well under a second of work).
MAX_BATCHES = 256
#: Young-generation threshold of the garbage collector in the worker (the default is
#: 700): every packet allocates a few acyclic objects and a batch keeps a block's
#: packets alive, so with the default the collector keeps walking the detectors' tables
#: for nothing. Objects alive after start-up are frozen out of collections.
GC_YOUNG = 10_000
BATCH = 64  # findings per message
REPORT_EVERY = 1.0  # seconds between counter reports
MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    interface: str
    config: NetworkConfig
    ring: bool = True
    index: int = 0
    #: with several workers on the interface: the addresses this one owns (fanout.py)
    share: Share | None = None


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """A new policy section: the filter is swapped on the live socket, detectors rebuilt
    when their settings changed (their state starts afresh)."""

    config: NetworkConfig


@dataclass(frozen=True, slots=True)
class Forget:
    """Addresses an operator unblocked (``net unblock``): every detector drops what it
    keeps about them, so a fresh offence is detected afresh (not taken for the one
    already reported, which a scan would be for ``network.scan.window``)."""

    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WorkerReport:
    findings: tuple[Finding, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Worker:
    def __init__(self, spec: WorkerSpec, ctl: socket.socket, chain: Chain | None = None) -> None:
        self.spec = spec
        self.cfg = spec.config
        self.ctl = ctl
        self.clock = SystemClock()
        self.cooked = is_cooked(spec.interface)  # no Ethernet header on this link
        base = replace(filter_spec(self.cfg), cooked=self.cooked)
        program = share_filter(base, spec.share)
        sock = open_capture_socket(spec.interface, program, promiscuous=self.cfg.promiscuous,
                                   rcvbuf=int(self.cfg.ring_size), ring=spec.ring,
                                   cooked=self.cooked)
        self.capture: RecvCapture | RingCapture = (
            RingCapture(sock, blocks=max(2, int(self.cfg.ring_size) // (1 << 20)),
                        cooked=self.cooked)
            if spec.ring else RecvCapture(sock, snap=self.cfg.snap_length, cooked=self.cooked))
        self.inspector = Inspector(chain if chain is not None else build_chain(self.cfg,
                                                                              self.clock))
        self.shedder = Shedder(sock, base, share=spec.share)
        self.outbox: deque[Finding] = deque()
        self.findings_dropped = 0
        self.findings_not_owned = 0  # about another worker's address: it reports them
        self.findings = 0
        self.forgotten = 0  # addresses forgotten on the daemon's request
        self._next_report = 0.0

    def read(self) -> int:
        """Decode what the kernel queued, :data:`PACKET_BATCH` frames at a time, each
        batch then fed to the detectors; returns the frames read."""
        packets: list[Packet] = []
        capture, inspector = self.capture, self.inspector
        total = 0
        for _ in range(MAX_BATCHES):
            n = capture.drain_packets(inspector, packets, PACKET_BATCH)
            if not n:
                break
            total += n
            self.feed(packets)
            packets.clear()
        return total

    def feed(self, packets: list[Packet]) -> None:
        feed = self.inspector.chain.feed
        for pkt in packets:
            found = feed(pkt)
            if found:
                self._queue(found)
                # a flood's first finding: have the kernel sample it from the next packet
                self.shedder.update(self.shed_source)

    @property
    def shed_source(self) -> ShedSource | None:
        """The detector chain, when it can shed (a substitute chain in tests cannot)."""
        chain = self.inspector.chain
        return chain if isinstance(chain, DetectorChain) else None

    def _queue(self, found: list[Finding]) -> None:
        share = self.spec.share
        for finding in found:
            if share is not None and not share.owns(finding):
                self.findings_not_owned += 1
                continue
            self.findings += 1
            if len(self.outbox) >= OUTBOX_LIMIT:
                self.outbox.popleft()
                self.findings_dropped += 1
            self.outbox.append(finding)

    def counters(self) -> dict[str, int]:
        stats = self.capture.read_stats()
        out = self.inspector.counters()
        out.update(self.shedder.counters())
        out.update({"kernel_packets": stats.packets, "kernel_drops": stats.drops,
                    "kernel_freezes": stats.freezes, "findings": self.findings,
                    "findings_dropped": self.findings_dropped,
                    "findings_not_owned": self.findings_not_owned,
                    "forgotten": self.forgotten,
                    "outbox": len(self.outbox)})
        return out

    def _send(self, report: WorkerReport) -> bool:
        try:
            self.ctl.send(pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL))
        except BlockingIOError:
            return False
        return True

    def flush(self, now: float) -> None:
        while self.outbox:
            batch = tuple(self.outbox[i] for i in range(min(BATCH, len(self.outbox))))
            if not self._send(WorkerReport(findings=batch)):
                return
            for _ in batch:
                self.outbox.popleft()
        if now >= self._next_report and self._send(WorkerReport(counters=self.counters())):
            self._next_report = now + REPORT_EVERY

    def control(self) -> bool:
        """Handle one control message; False on EOF (the daemon went away or stops us)."""
        try:
            raw = self.ctl.recv(MAX_MESSAGE)
        except BlockingIOError:
            return True
        if not raw:
            return False
        msg = pickle.loads(raw)  # noqa: S301 - from our own parent over a socket pair
        if isinstance(msg, Reconfigure):
            self.reconfigure(msg.config)
        elif isinstance(msg, Forget):
            self.forget(msg.addresses)
        return True

    def forget(self, addresses: tuple[str, ...]) -> None:
        self.inspector.chain.forget(addresses)
        self.forgotten += len(addresses)

    def reconfigure(self, cfg: NetworkConfig) -> None:
        if cfg != self.cfg:
            self.inspector.chain = build_chain(cfg, self.clock)
        self.shedder.rebase(replace(filter_spec(cfg), cooked=self.cooked), self.shed_source)
        self.cfg = cfg
        self.shedder.update(self.shed_source)  # floods a kept chain still sees

    def run(self) -> None:
        tick_every = 1.0
        next_tick = time.monotonic() + tick_every
        while True:
            # frames of a ring block already taken are read without waiting
            wait = 0.0 if self.capture.pending else 0.2
            readable, _, _ = select.select([self.capture.sock, self.ctl], [], [], wait)
            if self.ctl in readable and not self.control():
                return
            self.read()
            mono = time.monotonic()
            if mono >= next_tick:
                next_tick = mono + tick_every
                found = self.inspector.chain.tick(self.clock.now())
                if found:
                    self._queue(found)
                self.shedder.update(self.shed_source)  # floods that ended
            self.flush(mono)


def tune_gc() -> None:
    """Freeze what start-up built (never walked again) and let the young generation grow
    to :data:`GC_YOUNG` objects."""
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_YOUNG), threshold[1], threshold[2])


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    ctl = socket.socket(fileno=int(args[0]))
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    spec = pickle.loads(ctl.recv(MAX_MESSAGE))  # noqa: S301 - from our own parent
    assert isinstance(spec, WorkerSpec)
    try:
        worker = Worker(spec, ctl)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the daemon must hear why
        ctl.send(pickle.dumps(WorkerReport(error=f"{spec.interface}: {exc}")))
        return 1
    ctl.setblocking(False)
    tune_gc()
    try:
        worker.run()
    finally:
        with contextlib.suppress(OSError):
            ctl.setblocking(True)
            ctl.settimeout(1.0)
            worker.flush(float("inf"))
        worker.capture.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # run the imported module's main, so pickled WorkerSpec/Reconfigure classes (named
    # edgeguard.net.worker.*) are the ones isinstance() checks against, not __main__'s
    import importlib

    sys.exit(importlib.import_module("edgeguard.net.worker").main())
