"""Fixtures for the day-to-day command tests: one realistic trail per module."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ops_trail import Truth, school_week


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth, float]:
    """(audit directory, what a report must show, the "now" it was written for)."""
    now = time.time()
    directory = tmp_path_factory.mktemp("trail") / "audit"
    return directory, school_week(directory, now), now
