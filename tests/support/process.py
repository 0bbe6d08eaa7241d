"""Stopping the processes a test started, by their Popen (never by name)."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["terminate"]


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
