"""The shipped policies' filter, compiled ahead of time (edgeguard.net.filter_aot), is
current and gives exactly what the kernel's semantics (bpf.run) and the run-time
translation give, frame by frame, on the captures."""

from __future__ import annotations

import itertools

from edgeguard.net import bpf
from edgeguard.net.bpfjit import compile_program, program_digest
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

