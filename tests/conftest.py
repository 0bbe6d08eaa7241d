"""Shared fixtures: run the CLI as a real subprocess, skip root-only tests without root."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"


def edgeguard_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def edgeguard_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeguard", *args]


def run_edgeguard(args: Sequence[str], *, check: bool = False, timeout: float = 60,
                  input: str | None = None, env: dict[str, str] | None = None,
                  ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(edgeguard_argv(*args), capture_output=True, text=True, check=check,
                          timeout=timeout, input=input, env=edgeguard_env(env))


@pytest.fixture
def eg() -> object:
    """``eg(["check", file])`` runs the CLI and returns the CompletedProcess."""
    return run_edgeguard


@pytest.fixture
def enrolled(tmp_path: Path) -> tuple[Path, Path]:
    """An audit key enrolled by ``edgeguard audit init``: (evolving key file, exported K0)."""
    key_file, export = tmp_path / "state" / "audit.key", tmp_path / "k0.key"
    proc = run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key_file)])
    assert proc.returncode == 0, proc.stderr
    return key_file, export


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "linux" in item.keywords or "lab" in item.keywords:
            item.add_marker(skip)
