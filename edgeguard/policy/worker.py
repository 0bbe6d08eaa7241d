"""Load a policy in a child process bounded in time and memory (the daemon's reload).

The daemon's event loop must never wait on a policy file: SIGHUP and ``reload`` start
``python -m edgeguard.policy.worker``, which sets its own address-space and CPU limits
before it reads a byte, loads the policy exactly as ``edgeguard check`` would, and
writes the result to its stdout. The loop awaits the pipe; when the child runs past
:attr:`WorkerLimits.timeout` it is killed, and a child that dies (out of memory, a
signal) or says nothing is a refused policy like any other: the running one stays.

The result travels as a pickle (a :class:`LoadedPolicy`, or the tuple of issues) on a
pipe only this process and its own child hold; the child parses the hostile file,
never the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeguard.policy.convert import PolicyIssue
from edgeguard.policy.load import LoadedPolicy, PolicyError, load_policy
from edgeguard.policy.yamltree import Mark

__all__ = ["DEFAULT_WORKER_LIMITS", "WorkerLimits", "load_policy_bounded", "main"]


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    """Bounds on one policy load in the worker."""

    #: Wall-clock seconds before the worker is killed: a backstop for a worker that
    #: waits rather than computes (a 1 MiB policy, the largest accepted, takes 2.6 s of
    #: CPU and was seen at 22 s of wall time on a two-core machine shared six ways).
    timeout: float = 60.0
    #: CPU seconds (RLIMIT_CPU): the bound on a worker that computes.
    cpu_seconds: int = 30
    #: Address space of the worker, bytes (RLIMIT_AS; that policy peaks at 60 MB).
    memory: int = 256 << 20


DEFAULT_WORKER_LIMITS = WorkerLimits()


def _refused(files: Sequence[Path], message: str) -> PolicyError:
    where = str(files[-1]) if files else "<policy>"
    return PolicyError([PolicyIssue(Mark(where, 0, 0), "", message)])


async def load_policy_bounded(files: Sequence[Path], profile: str | None,
                              limits: WorkerLimits = DEFAULT_WORKER_LIMITS) -> LoadedPolicy:
    """:func:`load_policy` in a bounded child; raises :class:`PolicyError` for a bad
    policy and for a worker that was killed, ran out of memory or failed."""
    request = json.dumps({"files": [str(f) for f in files], "profile": profile,
                          "memory": limits.memory,
                          "cpu": limits.cpu_seconds}).encode()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgeguard.policy.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, close_fds=True)
    except OSError as exc:
        raise _refused(files, f"cannot start the policy loader: {exc}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), limits.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise _refused(files, f"loading the policy took longer than {limits.timeout:g} s "
                              "(the reload limit): refused") from None
    if proc.returncode != 0 or not out:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise _refused(files, f"the policy loader failed (exit {proc.returncode}"
                              f"{': ' + tail[0][:200] if tail[0] else ''}): refused")
    try:
        outcome = pickle.loads(out)  # noqa: S301 - our own child, on our own pipe
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
        raise _refused(files, f"the policy loader's answer is unreadable: {exc}") from None
    if isinstance(outcome, LoadedPolicy):
        return outcome
    if isinstance(outcome, tuple) and all(isinstance(i, PolicyIssue) for i in outcome):
        raise PolicyError(outcome)
    raise _refused(files, "the policy loader answered nonsense: refused")


def _limit(memory: int, cpu: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def main() -> int:
    """The child: one JSON request on stdin; on stdout, the pickled policy or issues."""
    request = json.loads(sys.stdin.buffer.read(1 << 20))
    files = [Path(f) for f in request["files"]]
    _limit(int(request["memory"]), int(request["cpu"]))
    outcome: LoadedPolicy | tuple[PolicyIssue, ...]
    try:
        outcome = load_policy(files, request["profile"])
    except PolicyError as exc:
        outcome = exc.issues
    except MemoryError:
        outcome = _refused(files, f"loading the policy needed more than "
                                  f"{int(request['memory']) >> 20} MiB (the reload limit): "
                                  "refused").issues
    data = pickle.dumps(outcome)
    view = memoryview(data)
    while view:
        view = view[os.write(sys.stdout.fileno(), view):]
    return 0


if __name__ == "__main__":
    sys.exit(main())
