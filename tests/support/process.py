"""Stopping the processes a test started, by their Popen (never by name); finding
whether some other process of a name runs (to leave it alone)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["host_processes", "terminate"]


def terminate(proc: subprocess.Popen[Any] | None, timeout: float = 30) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code (None: nothing to stop)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def host_processes(*names: str) -> list[int]:
    """PIDs of live processes (zombies do not count) whose command name is one of
    ``names``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                name = stat[stat.index("(") + 1:stat.rindex(")")]
                state = stat.split(")")[-1].split()[0]
                if name in names and state != "Z":
                    pids.append(int(entry.name))
    return pids
