"""Shared driver and limits for the fuzz tests (issue 16 §4).

Each fuzz target has one generator ``gen(rnd: random.Random) -> bytes``, run two ways:
hypothesis drives it through ``st.randoms()`` (:data:`HYPOTHESIS_EXAMPLES` inputs, with
shrinking on failure), and :func:`campaign` runs it on seeds ``0..N-1`` without
hypothesis' per-example overhead, so a large campaign is cheap. ``N`` is
``EDGEGUARD_FUZZ_EXAMPLES`` (default :data:`CI_EXAMPLES`); run it with 100000 for the
full campaign (docs/security.md records the figures).

Every input is held to :data:`MAX_SECONDS` and to :data:`MAX_PEAK_BYTES` of Python
allocations (tracemalloc) beyond eight times its own size.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

__all__ = ["CI_EXAMPLES", "HYPOTHESIS_EXAMPLES", "MAX_PEAK_BYTES", "MAX_SECONDS", "Budget",
           "campaign", "examples", "fuzz_settings"]

CI_EXAMPLES = 5000
HYPOTHESIS_EXAMPLES = 300
#: Wall time one input may take: generous, CI machines are shared (the worst seen on a
#: loaded two-core machine was about 0.35 s; the typical input takes well under 1 ms).
MAX_SECONDS = 2.0
#: Python memory one input may allocate beyond eight times its own size.
MAX_PEAK_BYTES = 4 * 1024 * 1024


def examples() -> int:
    return int(os.environ.get("EDGEGUARD_FUZZ_EXAMPLES", CI_EXAMPLES))


def fuzz_settings() -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(max_examples=min(examples(), HYPOTHESIS_EXAMPLES), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


@dataclass(slots=True)
class Budget:
    """Counts inputs and keeps the worst time and memory seen."""

    inputs: int = 0
    worst_seconds: float = 0.0
    worst_peak: int = 0

    def run(self, target: Callable[[bytes], None], data: bytes) -> None:
        """``target(data)`` within the per-input time and memory bounds."""
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        target(data)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base if tracing else 0
        self.inputs += 1
        self.worst_seconds = max(self.worst_seconds, elapsed)
        self.worst_peak = max(self.worst_peak, peak)
        assert elapsed < MAX_SECONDS, f"one input took {elapsed:.3f}s"
        assert peak < MAX_PEAK_BYTES + 8 * len(data), f"one input allocated {peak} bytes"


def campaign(name: str, gen: Callable[[random.Random], bytes],
             target: Callable[[bytes], None], count: int | None = None) -> Budget:
    """Run ``target`` on ``gen(Random(seed))`` for seeds 0..count-1; print the rate."""
    count = examples() if count is None else count
    budget = Budget()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for seed in range(count):
            data = gen(random.Random(seed))
            try:
                budget.run(target, data)
            except BaseException as exc:
                raise AssertionError(f"{name}: seed {seed} input {data[:200]!r}: "
                                     f"{type(exc).__name__}: {exc}") from exc
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    print(f"\nFUZZ {name}: {budget.inputs} inputs in {elapsed:.1f}s "
          f"({budget.inputs / elapsed:.0f}/s), worst {budget.worst_seconds * 1000:.1f} ms, "
          f"worst peak {budget.worst_peak / 1024:.0f} KiB")
    return budget
