"""Issue 17: ``edgeguard.policy`` loads nothing lazily, and every module that the policy
model is built from imports first, on its own, in a fresh interpreter (the order that
once closed the cycle ``audit.config → policy/__init__ → load → model → audit.config``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import edgeguard.policy
from tests.conftest import ROOT, edgeguard_env

CONFIGS = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                 for path in (ROOT / "edgeguard").rglob("config.py"))
FIRST_IMPORTS = [*CONFIGS, "edgeguard.policy.types", "edgeguard.policy.model",
                 "edgeguard.policy.load", "edgeguard.policy.convert", "edgeguard.daemon.run"]


def test_the_package_has_no_lazy_getattr() -> None:
    assert "__getattr__" not in vars(edgeguard.policy)
    assert edgeguard.policy.__all__ == []


def test_config_modules_exist() -> None:
    assert len(FIRST_IMPORTS) >= 10
    assert all(Path(ROOT, *m.split(".")).with_suffix(".py").exists() for m in FIRST_IMPORTS)


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_imports_first_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], env=edgeguard_env(),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
