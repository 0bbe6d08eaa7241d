"""Fixtures for the nftables enforcement tests: a fresh lab per test, always torn down."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from btlab import TOOLS
from nftlab import Lab, new_lab, require_tools


@pytest.fixture
def lab() -> Iterator[Lab]:
    missing = require_tools()
    if missing:
        pytest.fail(f"{missing}: install the packages in ci/apt.d/nft.txt")
    lab = new_lab()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def swarm_tools() -> None:
    """The BitTorrent tools the swarm tests need (ci/apt.d/nft.txt installs them)."""
    missing = [t for t in TOOLS if not os.access(t, os.X_OK)]
    if missing:
        pytest.fail(f"{missing} missing: install the packages in ci/apt.d/nft.txt")
