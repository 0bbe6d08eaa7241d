"""Fixtures for the audit tests (helpers live in audit_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import LogFactory, write_log


@pytest.fixture
def audit_log(tmp_path: Path) -> LogFactory:
    def make(count: int = 40, **kw: object) -> Path:
        return write_log(tmp_path / "log", count, **kw)  # type: ignore[arg-type]
    return make
