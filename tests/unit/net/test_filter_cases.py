"""Crafted, labelled frames (tests/data/pcaps/filter_cases.*) against the filter, in the
interpreter and in its translation."""

from __future__ import annotations

import pytest

from edgeguard.net import bpf
from edgeguard.net.bpfjit import compile_program
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.pcapfile import read_capture
from tests.unit.net.netdata import PCAPS

PROG = build_filter(FilterSpec(udp_sample=0))
JIT = compile_program(PROG)
FRAMES = list(read_capture(PCAPS / "filter_cases.pcap"))
LABELS = (PCAPS / "filter_cases.labels").read_text().splitlines()


def test_every_frame_is_labelled() -> None:
    assert len(FRAMES) == len(LABELS) > 40


@pytest.mark.parametrize("index", range(len(LABELS)), ids=LABELS)
def test_crafted_frame(index: int) -> None:
    frame, label = FRAMES[index], LABELS[index]
    want = label.split()[0] == "keep"
    got = bpf.run(PROG, frame.data, frame.wire_len)
    assert bool(got) is want
    assert JIT(frame.data, frame.wire_len) == got
    if want:
        assert got == FilterSpec().snap_length


def test_large_udp_is_sampled_one_in_n() -> None:
    sampled = build_filter(FilterSpec(udp_sample=4))
    frame = FRAMES[LABELS.index("drop udp 513 no shape")]
    draws = iter(range(64))
    kept = sum(bool(bpf.run(sampled, frame.data, rand=lambda: next(draws))) for _ in range(64))
    assert kept == 16
