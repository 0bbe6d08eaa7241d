"""The syncer: one thread that makes written records durable in groups and runs the
writer's timers (a due checkpoint, a retry of held records).

``fdatasync`` runs without the writer's lock on a duplicated descriptor, so a record's
``write()`` never waits for the disk; a rotation meanwhile syncs and closes its own. The
syncer knows the writer only through :class:`SyncTarget`.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

__all__ = ["SyncTarget", "Syncer"]

_MIN_WAIT = 0.05


class SyncTarget(Protocol):
    """What the syncer drives; every method is called with the target's lock held."""

    closed: bool

    def next_work(self) -> float:
        """Seconds until something is due (<= 0: now)."""

    def begin_sync(self) -> tuple[int, int] | None:
        """A due group sync: (a dup'ed descriptor, the sequence it covers), or None
        (nothing due, or done under the lock because no descriptor could be spared)."""

    def end_sync(self, sequence: int, error: OSError | None) -> None:
        """The group sync of ``sequence`` finished (``error``: it failed)."""

    def run_due(self) -> None:
        """Retries and checkpoints that are due."""

    def idle_wait(self) -> float:
        """The longest the syncer sleeps without looking again."""


class Syncer:
    def __init__(self, lock: threading.Condition, target: SyncTarget) -> None:
        self._lock = lock
        self._target = target
        self._thread = threading.Thread(target=self._loop, name="audit-fsync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        target = self._target
        with self._lock:
            while not target.closed:
                wait = target.next_work()
                if wait > 0:
                    self._lock.wait(timeout=min(wait, max(target.idle_wait(), _MIN_WAIT)))
                    continue
                job = target.begin_sync()
                if job is not None:
                    self._sync_unlocked(*job)
                if not target.closed:
                    target.run_due()

    def _sync_unlocked(self, fd: int, sequence: int) -> None:
        error: OSError | None = None
        self._lock.release()
        try:
            os.fdatasync(fd)
        except OSError as exc:
            error = exc
        finally:
            os.close(fd)
            self._lock.acquire()
        self._target.end_sync(sequence, error)
