"""Fixtures for the root-only media tests: a udevd with the shipped rule, loop sticks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from media_sticks import Stick, StickSpec, attach, build_image, detach, udevd_with_rules


@pytest.fixture(scope="session")
def udevd() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with udevd_with_rules():
        yield


@pytest.fixture
def stick_factory(udevd: None, tmp_path: Path) -> Iterator[Callable[[StickSpec], Stick]]:
    """``stick_factory(StickSpec(...))`` builds an image and attaches it as a USB stick."""
    made: list[Stick] = []

    def make(spec: StickSpec) -> Stick:
        image = build_image(tmp_path, spec)
        stick = attach(image, 0 if spec.whole_disk else len(spec.partitions))
        made.append(stick)
        return stick

    yield make
    for stick in made:
        detach(stick)
