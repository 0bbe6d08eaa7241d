"""The ``lab`` fixture: two namespaces joined by a "physical" and a "VPN" veth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wifi_netns import Lab, make_lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from make_lab()
