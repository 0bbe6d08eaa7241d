"""Actions off the event loop: a queue drained by one worker thread, in batches.

As fail2ban's actions thread: the event loop only *queues* an action (a few
microseconds); the worker takes everything queued at once (one *tick*, at most
:data:`MAX_BATCH` jobs), applies the jobs of an action that can batch
(:class:`~edgeguard.actions.base.BatchAction`, nftables) in one system transaction,
the others one by one, and hands the results back to the loop
(``call_soon_threadsafe``), where the audit records are written. So a burst of severe
findings costs the loop the decisions and records only, never a ``nft`` fork, and USB
decisions, Wi-Fi, the control socket and the watchdog ping go on.

Every job's record is opened as a failure before it is queued; only the result the
action reports turns it into success. A job refused because the queue is full, or still
queued when the daemon stops, is written as a failure saying so: never a lost record.

Only actions that wait on the system (:class:`~edgeguard.actions.base.BatchAction`:
nftables) are queued; a sysfs write or a wpa_supplicant request runs on the loop at
once, where the state of its component lives. One thread, so the actions on one system
object (the nftables table) are serialised;
:meth:`ActionWorker.call` runs other work on the same thread (the table's expiry poll,
``net blocks``) so it never races an action.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import structlog

from edgeguard.actions.base import Action, BatchAction, run_action, waits_on_system
from edgeguard.audit.sink import AuditSink
from edgeguard.events import ActionKind, ActionResult, AuditRecord, Decision

__all__ = ["MAX_BATCH", "MAX_QUEUED", "STOP_TIMEOUT", "ActionJob", "ActionRunner",
           "ActionWorker", "Done", "InlineRunner", "LoopSink", "execute"]

T = TypeVar("T")
log = structlog.get_logger("edgeguard.actions")

#: Most jobs one tick takes: one nftables transaction per action kind per tick.
MAX_BATCH = 256
#: Jobs waiting beyond this are refused at once (recorded as failed: queue full).
MAX_QUEUED = 10_000
#: At stop, how long (seconds) to wait for the worker to finish what it holds.
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ActionJob:
    """One action to run for one decision; ``record`` was opened as a failure."""

    decision: Decision
    kind: ActionKind
    action: Action | None
    record: AuditRecord


#: Called on the event loop's thread with each job and what its action reported.
Done = Callable[[ActionJob, ActionResult], None]


class ActionRunner(Protocol):
    def put(self, job: ActionJob, done: Done) -> bool:
        """Queue ``job``; ``done`` is called with its result. False: refused (full)."""


def _missing(job: ActionJob) -> ActionResult:
    return ActionResult(job.kind, ok=False, detail=f"no component provides {job.kind.value!r}")


def execute(jobs: Sequence[ActionJob]) -> list[ActionResult]:
    """Run ``jobs``: those of one batching action in one call, the rest one by one."""
    results: dict[int, ActionResult] = {}
    groups: dict[int, tuple[BatchAction, list[int]]] = {}
    for index, job in enumerate(jobs):
        action: object = job.action
        if job.action is None:
            results[index] = _missing(job)
        elif waits_on_system(action):
            groups.setdefault(id(action), (cast(BatchAction, action), []))[1].append(index)
        else:
            results[index] = run_action(functools.partial(job.action.apply, job.decision))
    for batch, indexes in groups.values():
        decisions = [jobs[i].decision for i in indexes]
        try:
            out = batch.apply_batch(decisions)
        except Exception as exc:  # noqa: BLE001 - every job still gets a failed result
            out = [ActionResult(jobs[i].kind, ok=False, detail=f"{type(exc).__name__}: {exc}")
                   for i in indexes]
        for i, result in zip(indexes, out, strict=True):
            results[i] = result
    return [results[i] for i in range(len(jobs))]


class InlineRunner:
    """Runs each job at once on the caller's thread (replay, tests, the CLI)."""

    def put(self, job: ActionJob, done: Done) -> bool:
        (result,) = execute([job])
        done(job, result)
        return True


@dataclass(slots=True)
class _Call:
    fn: Callable[[], object]
    future: concurrent.futures.Future[object]


_STOP = object()


class ActionWorker:
    """The daemon's action queue and its worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_batch: int = MAX_BATCH,
                 max_queued: int = MAX_QUEUED) -> None:
        self.loop = loop
        self.max_batch = max_batch
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._finished: deque[tuple[ActionJob, ActionResult, Done]] = deque()
        self._thread: threading.Thread | None = None
        self.jobs = 0
        self.batches = 0
        self.refused = 0
        self.most_in_batch = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgeguard-actions", daemon=True)
        self._thread.start()

    def put(self, job: ActionJob, done: Done) -> bool:
        """Queue a job whose action waits on the system; run any other at once."""
        if not waits_on_system(job.action):
            return InlineRunner().put(job, done)
        try:
            self._queue.put_nowait((job, done))
        except queue.Full:
            self.refused += 1
            return False
        return True

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the worker thread, in order with the actions queued before it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Call(fn, future))  # type: ignore[arg-type]
        return future

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[tuple[ActionJob, Done]]:
        """Let the worker finish what is queued (within ``timeout``), deliver the results
        here, and return the jobs it did not get to. Call on the loop's thread."""
        leftover: list[tuple[ActionJob, Done]] = []
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):
                    leftover.append(item)
            self._thread = None
        self._deliver()
        return leftover

    def counters(self) -> dict[str, int]:
        return {"action_jobs": self.jobs, "action_batches": self.batches,
                "action_refused": self.refused, "action_queued": self._queue.qsize(),
                "action_most_in_batch": self.most_in_batch}

    # -- the worker thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            tick = [first]
            stopping = False
            while len(tick) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                tick.append(item)
            self._tick(tick)
            if stopping:
                return

    def _tick(self, items: list[object]) -> None:
        jobs: list[tuple[ActionJob, Done]] = []
        for item in items:
            if isinstance(item, _Call):
                self._flush(jobs)  # keep order: actions queued before the call run first
                jobs = []
                try:
                    item.future.set_result(item.fn())
                except Exception as exc:  # noqa: BLE001 - handed to whoever waits
                    item.future.set_exception(exc)
            elif isinstance(item, tuple):
                jobs.append(item)
        self._flush(jobs)

    def _flush(self, jobs: list[tuple[ActionJob, Done]]) -> None:
        if not jobs:
            return
        results = execute([job for job, _ in jobs])
        self.jobs += len(jobs)
        self.batches += 1
        self.most_in_batch = max(self.most_in_batch, len(jobs))
        for (job, done), result in zip(jobs, results, strict=True):
            self._finished.append((job, result, done))
        with contextlib.suppress(RuntimeError):  # a closed loop: stop() delivers
            self.loop.call_soon_threadsafe(self._deliver)

    # -- back on the loop --------------------------------------------------------------
    def _deliver(self) -> None:
        while self._finished:
            job, result, done = self._finished.popleft()
            done(job, result)


class LoopSink:
    """An audit sink for work on the worker thread (the nftables expiry poll): records
    written there are handed to the loop, which owns the audit writer. Returns 0 for a
    record handed over (its sequence number is not known yet)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: AuditSink) -> None:
        self.loop = loop
        self.sink = sink
        self._loop_thread = threading.get_ident()

    def write(self, record: AuditRecord) -> int:
        if threading.get_ident() == self._loop_thread:
            return self.sink.write(record)
        self.loop.call_soon_threadsafe(self._write, record)
        return 0

    def _write(self, record: AuditRecord) -> None:
        try:
            self.sink.write(record)
        except OSError as exc:
            log.error("audit write failed", action=record.action, error=str(exc))
