"""The range of times an ECS ``@timestamp`` can show, as a leaf module: ``replay``
counts out-of-range capture times without importing :mod:`edgeguard.ecs` (its
dataclasses and the finding catalogue) when it prints no JSON."""

from __future__ import annotations

__all__ = ["MAX_EPOCH", "MIN_EPOCH", "timestamp_in_range"]

#: The times RFC 3339 (and Python's datetime) can write: 0001-01-01T00:00:00Z to
#: 9999-12-31T23:59:59Z. A time outside (a capture file's forged or damaged header:
#: pcapng timestamps are 64-bit ticks) is written as the nearest end, never raised on;
#: callers that take times from input count those with :func:`timestamp_in_range`.
MIN_EPOCH = -62_135_596_800.0
MAX_EPOCH = 253_402_300_799.0


def timestamp_in_range(epoch: float) -> bool:
    """Whether ``epoch`` is written as it is (not clamped) by
    :func:`edgeguard.ecs.iso_timestamp`."""
    return MIN_EPOCH <= epoch <= MAX_EPOCH  # False for NaN too
