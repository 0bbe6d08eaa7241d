"""The cBPF assembler, the reference interpreter and the Python translation agree."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.net import bpf
from edgeguard.net.bpf import assemble, ja, jeq, label, ld, ldx, op, ret, run, tax
from edgeguard.net.bpfjit import compile_program
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.filter_aot_gen import shipped_programs


def test_labels_resolve_to_forward_offsets() -> None:
    prog = assemble([ld("h", abs_=12), jeq(0x0800, "yes", "no"), label("yes"), ret(96),
                     label("no"), ret(0)])
    assert prog.insns == ((0x28, 0, 0, 12), (0x15, 0, 1, 0x0800), (0x06, 0, 0, 96),
                          (0x06, 0, 0, 0))
    assert prog.pack()[:8] == struct.pack("=HBBI", 0x28, 0, 0, 12)


def test_far_conditional_jump_gets_a_trampoline() -> None:
    filler = [op("add", 1)] * 300
    prog = assemble([ld(imm=7), jeq(7, "far", "near"), label("near"), ret(1), *filler,
                     label("far"), ret(2)])
    assert all(jt <= 255 and jf <= 255 for _, jt, jf, _ in prog.insns)
    assert run(prog, b"") == 2
    prog2 = assemble([ld(imm=8), jeq(7, "far", "near"), label("near"), ret(1), *filler,
                      label("far"), ret(2)])
    assert run(prog2, b"") == 1


def test_assembler_rejects_bad_programs() -> None:
    with pytest.raises(ValueError, match="unknown label"):
        assemble([ja("nowhere"), ret(0)])
    with pytest.raises(ValueError, match="end with ret"):
        assemble([ld(imm=1)])
    with pytest.raises(ValueError, match="duplicate label"):
        assemble([label("a"), label("a"), ret(0)])


def test_out_of_bounds_load_drops_like_the_kernel() -> None:
    prog = assemble([ld("w", abs_=10), ret(100)])
    assert run(prog, bytes(14)) == 100
    assert run(prog, bytes(13)) == 0
    ind = assemble([ldx(imm=12), ld("h", ind=1), ret(100)])
    assert run(ind, bytes(15)) == 100
    assert run(ind, bytes(14)) == 0
    assert compile_program(ind)(bytes(14), 14) == 0


def test_division_by_zero_drops() -> None:
    prog = assemble([ld(imm=5), ldx(imm=0), op("div"), ret(None)])
    assert run(prog, b"") == 0
    assert compile_program(prog)(b"", 0) == 0


def test_alu_wraps_at_32_bits() -> None:
    prog = assemble([ld(imm=0), op("sub", 1), tax(), ld(imm=0xFFFFFFFF), op("add", 2),
                     ret(None)])
    assert run(prog, b"") == 1


def test_filter_fits_the_kernel_limits() -> None:
    prog = build_filter()
    assert 0 < len(prog) < bpf.BPF_MAXINSNS
    assert len(prog.pack()) == 8 * len(prog)


def test_udp_sample_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        FilterSpec(udp_sample=3)


FILTER = build_filter(FilterSpec(udp_sample=4))
JIT = compile_program(FILTER, rand=lambda: 4)


def _frames() -> st.SearchStrategy[bytes]:
    """Random frames biased towards Ethernet/IP headers so deep branches get covered."""
    eth = st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x08\x06", b"\x81\x00\x00\x05\x08\x00",
                           b"\x81\x00\x00\x05\x86\xdd", b"\x88\xcc"])
    ip4 = st.builds(lambda ihl, rest, proto: bytes([0x40 | ihl, 0]) + rest[:7] + bytes([proto])
                    + rest[8:], st.integers(0, 15), st.binary(min_size=0, max_size=80),
                    st.sampled_from([1, 6, 17, 58, 0, 44]))
    return st.builds(lambda mac, et, body: mac + et + body, st.binary(min_size=12, max_size=12),
                     eth, st.one_of(ip4, st.binary(max_size=120)))


@settings(max_examples=3000, deadline=None)
@given(_frames())
def test_translation_matches_the_interpreter(frame: bytes) -> None:
    assert JIT(frame, len(frame)) == run(FILTER, frame, len(frame), rand=lambda: 4)


AOT = compile_program(shipped_programs()[0])


@settings(max_examples=1000, deadline=None)
@given(_frames(), st.binary(max_size=24), st.binary(max_size=24))
def test_filters_read_a_frame_in_place(frame: bytes, before: bytes, after: bytes) -> None:
    """``replay`` runs the filter on a frame inside the file's buffer: the bytes around
    it change nothing (a load past the frame's end drops, as on the frame alone)."""
    buf = before + frame + after
    assert JIT.at(buf, len(before), len(frame), len(frame)) == JIT(frame, len(frame))
    bpf.reseed(7)  # the same draw for a sampled frame
    want = AOT(frame, len(frame))
    bpf.reseed(7)
    assert AOT.at(buf, len(before), len(frame), len(frame)) == want
