"""The shipped policies' filter, compiled ahead of time (edgeguard.net.filter_aot), is
current and gives exactly what the kernel's semantics (bpf.run) and the run-time
translation give, frame by frame, on the captures."""

from __future__ import annotations

import itertools

import pytest

from edgeguard.net import bpf
from edgeguard.net.bpfjit import aot_source, compile_program, program_digest
from edgeguard.net.filter_aot import PROGRAMS
from edgeguard.net.filter_aot_gen import main as aot_gen
from edgeguard.net.filter_aot_gen import shipped_programs
from edgeguard.net.pcapfile import read_capture
from tests.unit.net.golden_findings import captures


def test_generated_module_is_current() -> None:
    assert aot_gen(["--check"]) == 0, "run: python -m edgeguard.net.filter_aot_gen"


def test_shipped_filters_use_the_ahead_of_time_functions() -> None:
    for prog in shipped_programs():
        assert compile_program(prog).aot == PROGRAMS[program_digest(prog)]
    assert compile_program(shipped_programs()[0], rand=lambda: 1).aot == -1


def test_ahead_of_time_filter_agrees_with_the_interpreter_and_the_translation() -> None:
    prog = shipped_programs()[0]
    aot = compile_program(prog)
    assert aot.aot >= 0
    jit = compile_program(prog, rand=bpf.default_random)  # (a rand: translated now)
    n = kept = 0
    for path in captures():
        for frame in itertools.islice(read_capture(path), 400):
            results = []
            for run in (lambda f, w: bpf.run(prog, f, w), aot, jit):
                bpf.reseed(n)  # the same draw for a sampled frame
                results.append(run(frame.data, frame.wire_len))
            want = results[0]
            assert results == [want] * 3, f"{path.name} frame {n}"
            n += 1
            kept += want > 0
    assert n > 5000
    assert 0 < kept < n  # both outcomes exercised


def test_only_programs_that_store_before_they_load_reuse_scratch_memory() -> None:
    """The ahead-of-time functions reuse one scratch list across frames: a program
    that could read a word no path stored (the kernel refuses it too) is refused."""
    reads_unset = bpf.assemble([bpf.ld("b", abs_=0), bpf.jeq(1, "set", "use"),
                                bpf.label("set"), bpf.st(3), bpf.label("use"),
                                bpf.ld(mem=3), bpf.ret(256)])
    with pytest.raises(ValueError, match="scratch"):
        aot_source([reads_unset], "x")
    stores_first = bpf.assemble([bpf.ld("b", abs_=0), bpf.st(3), bpf.ld(mem=3),
                                 bpf.ret(256)])
    assert "p0_entry" in aot_source([stores_first], "x")
