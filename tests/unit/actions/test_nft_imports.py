"""Every enforcement module imports on its own, first, in a fresh interpreter.

The capture worker imports ``edgeguard.net.config`` first, which imports our policy
section; an import-order trick here once broke exactly that (a circular import in the
worker), so each entry point is checked in isolation.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import edgeguard_env

MODULES = ["edgeguard.net.config", "edgeguard.actions.nftables.config",
           "edgeguard.actions.nftables.service", "edgeguard.actions.nftables.enforcer",
           "edgeguard.actions.nftables.actions", "edgeguard.cli.net",
           "edgeguard.daemon.registry"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_first(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, env=edgeguard_env(), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
