"""Issue 16 §3: a reload parses the policy in a bounded worker, never on the event loop.

Against the live daemon: while a slow 1 MiB policy (valid up to its last line) is being
refused, the control socket keeps answering ``status`` within STATUS_BOUND; the
running policy stays. On the old main the same reload held the loop for the whole
parse (8 s of pure-Python YAML here), and an alias bomb held it for good.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from edgeguard.policy.load import PolicyError
from edgeguard.policy.worker import WorkerLimits, load_policy_bounded
from edgeguard.policy.yamltree import DEFAULT_LIMITS
from tests.support.daemon import Daemon

#: Longest a ``status`` may wait while a reload is being parsed (a loaded 2-core
#: machine shared by other test runs; an idle one answers in a few milliseconds).
STATUS_BOUND = 1.0
CORE_ONLY = "media:\n  enabled: false\nmode: monitor\n"
BOMB = Path(__file__).resolve().parents[2] / "data" / "policies" / "bad" / "alias-bomb.yaml"


def device(index: int) -> str:
    return (f"    - id: IT-{index:05d}\n      vendor_id: \"0951\"\n      product_id: \"1666\"\n"
            f"      serial: \"E0D55EA573DCF450E97C{index:06d}\"\n"
            f"      description: encrypted IronKey number {index}\n")


def slow_bad_policy() -> str:
    """Just under the size limit, every entry valid but the last (its line is named)."""
    text, index = "mode: monitor\nmedia:\n  enabled: false\n  trusted_devices:\n", 0
    while len(text) + len(device(index)) < DEFAULT_LIMITS.max_bytes - 100:
        text, index = text + device(index), index + 1
    return text + "    - perhaps\n"


def test_status_answers_while_a_slow_policy_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CORE_ONLY)
    slow = slow_bad_policy()
    with Daemon.running(tmp_path, policy) as daemon:
        digest = daemon.status()["policy_digest"]
        for failures, hostile in enumerate((slow, BOMB.read_text()), start=1):
            policy.write_text(hostile)
            daemon.proc.send_signal(signal.SIGHUP)
            started = time.monotonic()
            latencies: list[float] = []
            while time.monotonic() - started < 60:
                asked = time.monotonic()
                status = daemon.status()
                latencies.append(time.monotonic() - asked)
                if status["reload_failures"] == failures:
                    break
                time.sleep(0.05)
            assert status["reload_failures"] == failures
            assert status["policy_digest"] == digest  # the running policy stays
            assert max(latencies) < STATUS_BOUND, latencies
        records = [r for r in daemon.records()
                   if r["event"]["action"] == "policy-reload-failed"]  # type: ignore[index]
        messages = [r["error"]["message"] for r in records]  # type: ignore[index]
        assert messages[0].startswith(f"{policy}:{slow.count(chr(10))}:")
        assert f"{policy}:3:8: YAML aliases ('*a') are not supported" in messages[1]
        assert daemon.stop() == 0


def test_the_slow_policy_was_slow_enough_to_matter(tmp_path: Path) -> None:
    """The reload above spans many ``status`` round trips only if the worker really
    spent time on it: measure it (several hundred ms even on an idle machine)."""
    path = tmp_path / "slow.yaml"
    path.write_text(slow_bad_policy())
    started = time.monotonic()
    with pytest.raises(PolicyError):
        asyncio.run(load_policy_bounded([path], None))
    assert time.monotonic() - started > 0.3


def test_worker_time_limit_refuses(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(slow_bad_policy())
    with pytest.raises(PolicyError, match=r"took longer than 0\.2 s"):
        asyncio.run(load_policy_bounded([path], None, WorkerLimits(timeout=0.2)))


def test_worker_memory_limit_refuses(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(slow_bad_policy())
    with pytest.raises(PolicyError, match="refused"):
        asyncio.run(load_policy_bounded([path], None, WorkerLimits(memory=40 << 20)))


def test_worker_returns_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(CORE_ONLY.replace("monitor", "enforce"))
    loaded = asyncio.run(load_policy_bounded([path], "gateway"))
    assert loaded.policy.mode.value == "enforce"
    assert loaded.sources[-1] == str(path)
