"""Translate an assembled cBPF program into a Python function (a tiny JIT for replay).

Stepping :func:`edgeguard.net.bpf.run` costs a few microseconds per instruction; ``replay``
runs the filter over every frame of a capture, so the program is translated once into
Python source and compiled. cBPF only jumps forward, so the basic blocks form a DAG: a
block with one predecessor is inlined where it is jumped to, a block several jumps share
becomes a function called in tail position, and return blocks become a line. Semantics
are the interpreter's: an out-of-bounds load or a division by zero returns 0. A property
test checks both agree.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence

from edgeguard.net import bpf as B
from edgeguard.net import filter_aot
from edgeguard.net.bpf import Program, RandomSource

__all__ = ["Filter", "FilterAt", "aot_source", "compile_program", "program_digest"]

#: ``filter(buf, start, length, wire_len) -> bytes to keep (0 drops)``: the frame is
#: ``buf[start:start + length]``, read in place (``replay`` never copies a frame the
#: filter drops).
FilterAt = Callable[[bytes, int, int, int], int]

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


def _load(reg: str, width: int, off: str, const: int | None, typed: bool) -> list[str]:
    """``reg = width bytes at off`` (or at the constant offset) of the frame that starts
    at ``b`` in ``f`` and has ``n`` bytes, 0 returned when out of bounds. ``typed``:
    plain byte arithmetic, which mypyc compiles to C."""
    bound = f"{const + width} > n" if const is not None else f"o + {width} > n"
    lines = [] if const is not None else [f"o = {off}"]
    lines.append(f"if {bound}: return 0")
    i = f"b + {const}" if const is not None else "b + o"
    if width == 1:
        lines.append(f"{reg} = f[{i}]")
    elif width == 2:
        lines.append(f"{reg} = (f[{i}] << 8) | f[{i} + 1]")
    elif typed:
        lines.append(f"{reg} = (f[{i}] << 24) | (f[{i} + 1] << 16) | (f[{i} + 2] << 8)"
                     f" | f[{i} + 3]")
    else:
        lines.append(f"{reg} = _W(f, {i})[0]")
    return lines


def _insn_source(code: int, k: int, typed: bool = False) -> list[str]:  # noqa: PLR0911
    cls = code & 0x07
    if cls in (B.LD, B.LDX):
        reg = "a" if cls == B.LD else "x"
        mode, size = code & 0xE0, code & 0x18
        width = 4 if size == B.W else 2 if size == B.H else 1
        if mode == B.IMM:
            return [f"{reg} = {k}"]
        if mode == B.MEM:
            return [f"{reg} = m{k}"]
        if mode == B.LEN:
            return [f"{reg} = wl"]
        if mode == B.MSH:
            return [f"if {k} >= n: return 0", f"{reg} = (f[b + {k}] & 15) << 2"]
        if mode == B.ABS:
            if k >= (B.SKF_AD_OFF & _M):
                if k - (B.SKF_AD_OFF & _M) == B.SKF_AD_RANDOM:
                    return [f"{reg} = {'default_random' if typed else 'rnd'}() & {_M}"]
                return ["return 0"]
            return _load(reg, width, "", k, typed)
        # x always holds a 32-bit value: x + 0 needs no mask
        return _load(reg, width, f"(x + {k}) & {_M}" if k else "x", None, typed)
    if cls == B.ST:
        return [f"m{k} = a"]
    if cls == B.STX:
        return [f"m{k} = x"]
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




#: Nesting depth past which a block gets its own function (Python allows ~100 levels).
MAX_INLINE_DEPTH = 40


class _Emitter:
    """Python source for a program: blocks with one predecessor are inlined where they
    are jumped to, so a frame costs a handful of calls instead of one per block; a
    block several jumps share gets its own function; return blocks become a line."""

    def __init__(self, prog: Program, prefix: str = "", typed: bool = False) -> None:
        self.prog = prog
        self.prefix = prefix  # function names: {prefix}entry, {prefix}b{pc}
        self.typed = typed  # annotated source for a module compiled ahead of time
        self.leaders = _leaders(prog)
        self.ends = dict(zip(self.leaders, [*self.leaders[1:], len(prog.insns)], strict=True))
        self.preds: dict[int, int] = {}
        for start in self.leaders:
            for target in self._successors(start):
                self.preds[target] = self.preds.get(target, 0) + 1
        self.functions = [0]
        self.queued = {0}
        # the scratch words the program uses, as local variables m0..m15 (ints, where a
        # list would box every stored value), passed on to the shared blocks
        self.words = sorted({k for code, _jt, _jf, k in prog.insns
                             if code & 0x07 in (B.ST, B.STX)
                             or (code & 0x07 in (B.LD, B.LDX) and code & 0xE0 == B.MEM)})

    def _successors(self, start: int) -> list[int]:
        pc, end = start, self.ends[start]
        while pc < end:
            code, jt, jf, k = self.prog.insns[pc]
            cls = code & 0x07
            if cls == B.RET:
                return []
            if cls == B.JMP:
                if code & 0xF0 == B.JA:
                    return [pc + 1 + k]
                return [pc + 1 + jt, pc + 1 + jf]
            pc += 1
        return [end]

    def _terminal(self, target: int, depth: int) -> str | None:
        """One line that ends the path at ``target``, or None to inline it."""
        code, _jt, _jf, k = self.prog.insns[target]
        if code & 0x07 == B.RET:
            return "return a" if code & B.RVAL_A else f"return {k}"
        if self.preds.get(target, 0) > 1 or depth > MAX_INLINE_DEPTH:
            if target not in self.queued:
                self.queued.add(target)
                self.functions.append(target)
            return f"return {self.prefix}b{target}(f, b, n, wl, a, x{self._passed()})"
        return None

    def _goto(self, target: int, indent: str, out: list[str], depth: int) -> None:
        line = self._terminal(target, depth)
        if line is not None:
            out.append(indent + line)
        else:
            self._block(target, indent, out, depth)

    def _block(self, start: int, indent: str, out: list[str], depth: int) -> None:
        pc, end = start, self.ends[start]
        while pc < end:
            code, jt, jf, k = self.prog.insns[pc]
            cls = code & 0x07
            if cls == B.RET:
                out.append(indent + ("return a" if code & B.RVAL_A else f"return {k}"))
                return
            if cls == B.JMP:
                if code & 0xF0 == B.JA:
                    self._goto(pc + 1 + k, indent, out, depth)
                    return
                v = "x" if code & B.X else str(k)
                cond = {B.JEQ: f"a == {v}", B.JGT: f"a > {v}", B.JGE: f"a >= {v}",
                        B.JSET: f"a & {v}"}[code & 0xF0]  # fmt: skip
                taken = self._terminal(pc + 1 + jt, depth)
                if taken is not None:
                    out.append(f"{indent}if {cond}: {taken}")
                else:  # every inlined path ends in a return: no else needed
                    out.append(f"{indent}if {cond}:")
                    self._block(pc + 1 + jt, indent + "    ", out, depth + 1)
                self._goto(pc + 1 + jf, indent, out, depth)
                return
            out.extend(indent + line for line in _insn_source(code, k, self.typed))
            pc += 1
        self._goto(end, indent, out, depth)

    def _passed(self) -> str:
        return "".join(f", m{k}" for k in self.words)

    def source(self) -> str:
        # the first block (nothing jumps back to it) is the entry function's body
        p = self.prefix
        zero = ["    " + " = ".join([*(f"m{k}" for k in self.words), "0"])] if self.words else []
        if self.typed:
            lines = [f"def {p}entry(f: bytes, b: int, n: int, wl: int) -> int:",
                     "    a = x = 0", *zero]
            block = (f"def {p}b{{}}(f: bytes, b: int, n: int, wl: int, a: int, x: int"
                     + "".join(f", m{k}: int" for k in self.words) + ") -> int:")
        else:
            lines = [f"def {p}entry(f, b, n, wl):", "    a = x = 0", *zero]
            block = f"def {p}b{{}}(f, b, n, wl, a, x{self._passed()}):"
        self._block(0, "    ", lines, 0)
        i = 1
        while i < len(self.functions):  # _block queues the shared blocks it calls
            start = self.functions[i]
            lines.append(block.format(start))
            self._block(start, "    ", lines, 0)
            i += 1
        return "\n".join(lines)


def program_digest(prog: Program) -> str:
    """Names a program's instructions (what :mod:`edgeguard.net.filter_aot` is keyed by)."""
    return hashlib.sha256(repr(prog.insns).encode()).hexdigest()[:24]


def aot_source(progs: Sequence[Program], regenerate: str) -> str:
    """The source of :mod:`edgeguard.net.filter_aot`: ``progs`` as typed functions (one
    set per program) that mypyc compiles ahead of time, numbered in ``PROGRAMS`` by
    their digest and run by ``run(number, ...)`` (a direct C call when compiled)."""
    lines = ['"""Generated: the shipped policies\' capture filters as typed functions',
             f"(compiled ahead of time with mypyc). Do not edit; regenerate with {regenerate}.",
             '"""', "# ruff: noqa", "", "from __future__ import annotations", "",
             "from typing import Final", "",
             "from edgeguard.net.bpf import default_random", "",
             '__all__ = ["PROGRAMS", "run"]', ""]
    table = []
    dispatch = ["def run(which: int, f: bytes, b: int, n: int, wl: int) -> int:",
                '    """Program number ``which`` over ``f[b:b + n]`` (-1: no such program)."""']
    for i, prog in enumerate(progs):
        lines += ["", _Emitter(prog, prefix=f"p{i}_", typed=True).source(), ""]
        table.append(f'    "{program_digest(prog)}": {i},')
        dispatch.append(f"    if which == {i}: return p{i}_entry(f, b, n, wl)")
    lines += ["", *dispatch, "    return -1", "",
              "#: program digest -> its number for run()",
              "PROGRAMS: Final[dict[str, int]] = {", *table, "}",
              "_ = default_random  # (used by programs that sample)", ""]
    return "\n".join(lines)


class Filter:
    """A compiled filter program: ``keep(frame, wire_len)`` or, on a frame in place,
    ``keep.at(buf, start, length, wire_len)``; bytes to keep (0 drops)."""

    def __init__(self, aot: int, translated: FilterAt | None = None) -> None:
        self.aot = aot  # the program's number in filter_aot, -1: translated at run time
        self.translated = translated

    def at(self, buf: bytes, start: int, length: int, wire_len: int) -> int:
        if self.aot >= 0:
            return filter_aot.run(self.aot, buf, start, length, wire_len)
        assert self.translated is not None
        return self.translated(buf, start, length, wire_len)

    def __call__(self, frame: bytes, wire_len: int) -> int:
        return self.at(frame, 0, len(frame), wire_len)


def compile_program(prog: Program, rand: RandomSource | None = None) -> Filter:
    """A filter with the same result as ``bpf.run(prog, frame, wire_len)``: the
    ahead-of-time compiled one when ``prog`` is a shipped policy's filter (and the
    random source is the default), else translated now."""
    if rand is None:
        aot = filter_aot.PROGRAMS.get(program_digest(prog))
        if aot is not None:
            return Filter(aot)
    namespace: dict[str, object] = {"_W": struct.Struct(">I").unpack_from,
                                    "rnd": rand or B.default_random}
    source = _Emitter(prog).source()
    exec(compile(source, "<cbpf>", "exec"), namespace)  # noqa: S102 - our own source
    entry: FilterAt = namespace["entry"]  # type: ignore[assignment]
    return Filter(-1, entry)
