"""Translate an assembled cBPF program into a Python function (a tiny JIT for replay).

Stepping :func:`edgeguard.net.bpf.run` costs a few microseconds per instruction; ``replay``
runs the filter over every frame of a capture, so the program is translated once into
Python source (one function per basic block, chained by tail calls; cBPF only jumps
forward, so the blocks form a DAG) and compiled. Semantics are the interpreter's: an
out-of-bounds load or a division by zero returns 0. A property test checks both agree.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from edgeguard.net import bpf as B
from edgeguard.net.bpf import Program, RandomSource

__all__ = ["Filter", "compile_program"]

#: ``filter(frame, wire_len) -> bytes to keep (0 drops)``
Filter = Callable[[bytes, int], int]

_M = 0xFFFFFFFF


def _leaders(prog: Program) -> list[int]:
    leaders = {0}
    for pc, (code, jt, jf, k) in enumerate(prog.insns):
        cls = code & 0x07
        if cls == B.JMP:
            if code & 0xF0 == B.JA:
                leaders.add(pc + 1 + k)
            else:
                leaders.add(pc + 1 + jt)
                leaders.add(pc + 1 + jf)
        elif cls == B.RET and pc + 1 < len(prog.insns):
            leaders.add(pc + 1)
    return sorted(p for p in leaders if p < len(prog.insns))


def _load(width: int, off: str, const: int | None) -> list[str]:
    bound = f"{const + width} > n" if const is not None else f"o + {width} > n"
    lines = [] if const is not None else [f"o = {off}"]
    o = str(const) if const is not None else "o"
    lines.append(f"if {bound}: return 0")
    if width == 1:
        lines.append(f"v = f[{o}]")
    elif width == 2:
        lines.append(f"v = (f[{o}] << 8) | f[{o} + 1]")
    else:
        lines.append(f"v = _W(f, {o})[0]")
    return lines


def _insn_source(code: int, k: int) -> list[str]:  # noqa: PLR0911
    cls = code & 0x07
    if cls in (B.LD, B.LDX):
        reg = "a" if cls == B.LD else "x"
        mode, size = code & 0xE0, code & 0x18
        width = 4 if size == B.W else 2 if size == B.H else 1
        if mode == B.IMM:
            return [f"{reg} = {k}"]
        if mode == B.MEM:
            return [f"{reg} = m[{k}]"]
        if mode == B.LEN:
            return [f"{reg} = wl"]
        if mode == B.MSH:
            return [f"if {k} >= n: return 0", f"{reg} = (f[{k}] & 15) << 2"]
        if mode == B.ABS:
            if k >= (B.SKF_AD_OFF & _M):
                if k - (B.SKF_AD_OFF & _M) == B.SKF_AD_RANDOM:
                    return [f"{reg} = rnd() & {_M}"]
                return ["return 0"]
            return [*_load(width, "", k), f"{reg} = v"]
        return [*_load(width, f"(x + {k}) & {_M}", None), f"{reg} = v"]
    if cls == B.ST:
        return [f"m[{k}] = a"]
    if cls == B.STX:
        return [f"m[{k}] = x"]
    if cls == B.MISC:
        return ["a = x"] if code & 0xF8 == B.TXA else ["x = a"]
    if cls == B.ALU:
        v = "x" if code & B.X else str(k)
        opc = code & 0xF0
        expr = {
            B.ADD: f"(a + {v}) & {_M}", B.SUB: f"(a - {v}) & {_M}",
            B.MUL: f"(a * {v}) & {_M}", B.DIV: f"a // {v}", B.MOD: f"a % {v}",
            B.OR: f"a | {v}", B.AND: f"a & {v}", B.LSH: f"(a << ({v} & 31)) & {_M}",
            B.RSH: f"a >> ({v} & 31)", B.NEG: f"(-a) & {_M}", B.XOR: f"a ^ {v}",
        }[opc]  # fmt: skip
        guard = [f"if {v} == 0: return 0"] if opc in (B.DIV, B.MOD) else []
        return [*guard, f"a = {expr}"]
    raise ValueError(f"not a straight-line instruction: {code:#x}")


def _call(target: int) -> str:
    return f"return b{target}(f, n, wl, a, x, m)"


def compile_program(prog: Program, rand: RandomSource | None = None) -> Filter:
    """A Python function with the same result as ``bpf.run(prog, frame, wire_len)``."""
    leaders = _leaders(prog)
    lines: list[str] = []
    for i, start in enumerate(leaders):
        end = leaders[i + 1] if i + 1 < len(leaders) else len(prog.insns)
        lines.append(f"def b{start}(f, n, wl, a, x, m):")
        body: list[str] = []
        pc = start
        while pc < end:
            code, jt, jf, k = prog.insns[pc]
            cls = code & 0x07
            if cls == B.RET:
                body.append("return a" if code & B.RVAL_A else f"return {k}")
                break
            if cls == B.JMP:
                if code & 0xF0 == B.JA:
                    body.append(_call(pc + 1 + k))
                    break
                v = "x" if code & B.X else str(k)
                opc = code & 0xF0
                cond = {B.JEQ: f"a == {v}", B.JGT: f"a > {v}", B.JGE: f"a >= {v}",
                        B.JSET: f"a & {v}"}[opc]  # fmt: skip
                body.append(f"if {cond}: {_call(pc + 1 + jt)}")
                body.append(_call(pc + 1 + jf))
                break
            body.extend(_insn_source(code, k))
            pc += 1
        else:
            body.append(_call(end))
        lines.extend("    " + b for b in body)
    lines.append("def entry(f, wl):")
    lines.append("    return b0(f, len(f), wl, 0, 0, [0] * 16)")
    namespace: dict[str, object] = {"_W": struct.Struct(">I").unpack_from,
                                    "rnd": rand or B.default_random}
    exec(compile("\n".join(lines), "<cbpf>", "exec"), namespace)  # noqa: S102 - our own source
    entry: Filter = namespace["entry"]  # type: ignore[assignment]
    return entry
