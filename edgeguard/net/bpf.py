"""Classic BPF: declarative instructions, an assembler and a reference interpreter.

The capture filter is written once as a list of :class:`Insn` (with symbolic labels)
and assembled into the kernel's ``struct sock_filter`` array for ``SO_ATTACH_FILTER``.
The same assembled program runs over pcap frames in :func:`run` (a step interpreter
that follows the kernel's rules: out-of-bounds loads and division by zero end the
program with 0, i.e. drop) and in :mod:`edgeguard.net.bpfjit` (the same program
translated to a Python function, for speed), so the kernel and ``replay`` share one
filter semantics.

Encoding follows ``include/uapi/linux/filter.h`` and ``bpf_common.h``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "SKF_AD_OFF",
    "SKF_AD_PROTOCOL",
    "SKF_AD_RANDOM",
    "Insn",
    "Program",
    "assemble",
    "default_random",
    "ja",
    "jeq",
    "jge",
    "jgt",
    "jset",
    "label",
    "ld",
    "ldx",
    "op",
    "reseed",
    "ret",
    "run",
    "st",
    "stx",
    "tax",
    "txa",
]

# class
LD, LDX, ST, STX, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# size
W, H, B = 0x00, 0x08, 0x10
# mode
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# alu / jmp op
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)  # fmt: skip
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# source
K, X = 0x00, 0x08
RVAL_A = 0x10
TAX, TXA = 0x00, 0x80

SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0  # skb->protocol, host order: the ethertype of a cooked packet
SKF_AD_RANDOM = 56
BPF_MAXINSNS = 4096
MEMWORDS = 16
_U32 = 0xFFFFFFFF

_SIZES = {"w": W, "h": H, "b": B}
_ALU = {"add": ADD, "sub": SUB, "mul": MUL, "div": DIV, "or": OR, "and": AND,
        "lsh": LSH, "rsh": RSH, "neg": NEG, "mod": MOD, "xor": XOR}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Insn:
    """One instruction before assembly; ``jt``/``jf`` may name labels (or be offsets)."""

    code: int
    k: int = 0
    jt: str | int = 0
    jf: str | int = 0
    label: str | None = None  # a pseudo-instruction marking a jump target


def label(name: str) -> Insn:
    return Insn(code=-1, label=name)


def ld(size: str = "w", *, abs_: int | None = None, ind: int | None = None,
       imm: int | None = None, mem: int | None = None, ancillary: int | None = None) -> Insn:
    """``ld``: ``abs_`` P[k], ``ind`` P[X+k], ``imm`` constant, ``mem`` M[k]."""
    if imm is not None:
        return Insn(LD | W | IMM, imm & _U32)
    if mem is not None:
        return Insn(LD | W | MEM, mem)
    if ancillary is not None:
        return Insn(LD | W | ABS, (SKF_AD_OFF + ancillary) & _U32)
    if abs_ is not None:
        return Insn(LD | _SIZES[size] | ABS, abs_)
    if ind is not None:
        return Insn(LD | _SIZES[size] | IND, ind)
    raise ValueError("ld needs one of abs_, ind, imm, mem, ancillary")


def ldx(*, imm: int | None = None, mem: int | None = None, msh: int | None = None) -> Insn:
    if imm is not None:
        return Insn(LDX | W | IMM, imm & _U32)
    if mem is not None:
        return Insn(LDX | W | MEM, mem)
    if msh is not None:
        return Insn(LDX | B | MSH, msh)
    raise ValueError("ldx needs one of imm, mem, msh")


def st(mem: int) -> Insn:
    return Insn(ST, mem)


def stx(mem: int) -> Insn:
    return Insn(STX, mem)


def op(name: str, k: int | None = None) -> Insn:
    """ALU: ``op("add", 4)`` adds a constant, ``op("add")`` adds X; ``op("neg")``."""
    if k is None and name != "neg":
        return Insn(ALU | _ALU[name] | X)
    return Insn(ALU | _ALU[name] | K, (k or 0) & _U32)


def _jump(kind: int, k: int, jt: str | int, jf: str | int) -> Insn:
    return Insn(JMP | kind | K, k & _U32, jt, jf)


def jeq(k: int, jt: str | int = 0, jf: str | int = 0) -> Insn:
    return _jump(JEQ, k, jt, jf)


def jgt(k: int, jt: str | int = 0, jf: str | int = 0) -> Insn:
    return _jump(JGT, k, jt, jf)


def jge(k: int, jt: str | int = 0, jf: str | int = 0) -> Insn:
    return _jump(JGE, k, jt, jf)


def jset(k: int, jt: str | int = 0, jf: str | int = 0) -> Insn:
    return _jump(JSET, k, jt, jf)


def ja(target: str) -> Insn:
    return Insn(JMP | JA, 0, target, 0)


def ret(k: int | None = None) -> Insn:
    """``ret #k`` (bytes to keep; 0 drops) or ``ret a`` when ``k`` is None."""
    return Insn(RET | RVAL_A) if k is None else Insn(RET | K, k & _U32)


def tax() -> Insn:
    return Insn(MISC | TAX)


def txa() -> Insn:
    return Insn(MISC | TXA)


@dataclass(frozen=True, slots=True)
class Program:
    """An assembled program: ``(code, jt, jf, k)`` tuples, as the kernel takes them."""

    insns: tuple[tuple[int, int, int, int], ...]

    def pack(self) -> bytes:
        """The ``struct sock_filter[]`` array (native byte order)."""
        return b"".join(struct.pack("=HBBI", *i) for i in self.insns)

    def __len__(self) -> int:
        return len(self.insns)


def _is_cond(code: int) -> bool:
    return code & 0x07 == JMP and code & 0xF0 != JA


def _positions(body: list[Insn]) -> dict[str, int]:
    positions: dict[str, int] = {}
    pos = 0
    for insn in body:
        if insn.label is None:
            pos += 1
        elif insn.label in positions:
            raise ValueError(f"duplicate label {insn.label!r}")
        else:
            positions[insn.label] = pos
    return positions


def _offset(positions: dict[str, int], target: str | int, at: int) -> int:
    if isinstance(target, int):
        return target
    if target not in positions:
        raise ValueError(f"unknown label {target!r}")
    off = positions[target] - at - 1
    if off < 0:
        raise ValueError(f"backward jump to {target!r} (cBPF only jumps forward)")
    return off


def assemble(source: Sequence[Insn]) -> Program:
    """Resolve labels into offsets; a conditional jump further than 255 instructions
    gets a ``ja`` trampoline (cBPF's ``jt``/``jf`` are 8 bits, ``ja``'s ``k`` 32)."""
    body = list(source)
    while True:
        positions = _positions(body)
        out: list[tuple[int, int, int, int]] = []
        fixed: list[Insn] | None = None
        for n, insn in enumerate(body):
            if insn.label is not None:
                continue
            at = len(out)
            if insn.code & 0x07 == JMP and insn.code & 0xF0 == JA:
                out.append((insn.code, 0, 0, _offset(positions, insn.jt, at)))
            elif _is_cond(insn.code):
                jt, jf = _offset(positions, insn.jt, at), _offset(positions, insn.jf, at)
                if jt > 255 or jf > 255:
                    fixed = _trampoline(body, n, insn, far_true=jt > 255)
                    break
                out.append((insn.code, jt, jf, insn.k))
            else:
                out.append((insn.code, 0, 0, insn.k))
        if fixed is None:
            if len(out) > BPF_MAXINSNS:
                raise ValueError(f"program has {len(out)} instructions (max {BPF_MAXINSNS})")
            if not out or out[-1][0] & 0x07 != RET:
                raise ValueError("a program must end with ret")
            return Program(tuple(out))
        body = fixed


_tramp_seq = iter(range(1 << 30))


def _trampoline(body: list[Insn], n: int, insn: Insn, *, far_true: bool) -> list[Insn]:
    """Replace a conditional jump whose target is too far with a near jump to a ``ja``."""
    name = f"__far{next(_tramp_seq)}"
    after = f"{name}_after"
    far = insn.jt if far_true else insn.jf
    near = insn.jf if far_true else insn.jt
    if isinstance(near, int) and near:
        raise ValueError("a far jump's other branch must be a label or fall through")
    near_target: str | int = after if near == 0 else near
    jt, jf = (name, near_target) if far_true else (near_target, name)
    return [*body[:n], Insn(insn.code, insn.k, jt, jf), label(name), ja(str(far)),
            label(after), *body[n + 1:]]


RandomSource = Callable[[], int]


def run(prog: Program, frame: bytes, wire_len: int | None = None,  # noqa: PLR0912, PLR0915
        rand: RandomSource | None = None) -> int:
    """Run ``prog`` over ``frame`` the way the kernel's interpreter does; returns the
    number of bytes to keep (0 = drop). ``wire_len`` is ``len`` (BPF_LEN)."""
    a = x = 0
    mem = [0] * MEMWORDS
    n = len(frame)
    pc = 0
    insns = prog.insns
    rnd = rand or default_random
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == RET:
            return (a if code & RVAL_A else k) & _U32
        if cls in (LD, LDX):
            mode = code & 0xE0
            size = code & 0x18
            if mode == IMM:
                val = k
            elif mode == MEM:
                val = mem[k]
            elif mode == LEN:
                val = wire_len if wire_len is not None else n
            elif mode == MSH:
                if k >= n:
                    return 0
                val = (frame[k] & 0x0F) << 2
            else:
                off = k if mode == ABS else (x + k) & _U32
                if mode == ABS and k >= (SKF_AD_OFF & _U32):
                    if k - (SKF_AD_OFF & _U32) == SKF_AD_RANDOM:
                        val = rnd() & _U32
                    else:
                        return 0  # other ancillary data has no meaning in a file
                else:
                    width = 4 if size == W else 2 if size == H else 1
                    if off + width > n:
                        return 0
                    val = int.from_bytes(frame[off:off + width], "big")
            if cls == LD:
                a = val
            else:
                x = val
        elif cls == ST:
            mem[k] = a
        elif cls == STX:
            mem[k] = x
        elif cls == ALU:
            operand = x if code & X else k
            opc = code & 0xF0
            if opc in (DIV, MOD) and operand == 0:
                return 0
            a = _alu(opc, a, operand)
        elif cls == JMP:
            opc = code & 0xF0
            if opc == JA:
                pc += k
                continue
            operand = x if code & X else k
            taken = (a == operand if opc == JEQ else a > operand if opc == JGT
                     else a >= operand if opc == JGE else bool(a & operand))
            pc += jt if taken else jf
        elif code & 0xF8 == TXA:
            a = x
        else:
            x = a


_ALU_FN: dict[int, Callable[[int, int], int]] = {
    ADD: lambda a, v: (a + v) & _U32,
    SUB: lambda a, v: (a - v) & _U32,
    MUL: lambda a, v: (a * v) & _U32,
    DIV: lambda a, v: a // v,
    MOD: lambda a, v: a % v,
    OR: lambda a, v: a | v,
    AND: lambda a, v: a & v,
    LSH: lambda a, v: (a << (v & 31)) & _U32,
    RSH: lambda a, v: a >> (v & 31),
    NEG: lambda a, v: (-a) & _U32,
    XOR: lambda a, v: a ^ v,
}


def _alu(opc: int, a: int, v: int) -> int:
    return _ALU_FN[opc](a, v)


#: Replay draws SKF_AD_RANDOM from a seeded generator so a replay is reproducible.
SEED = 0x5EED
_rng = random.Random(SEED)  # noqa: S311 - sampling, not secrecy


def default_random() -> int:
    return _rng.getrandbits(32)


def reseed(seed: int = SEED) -> None:
    """Restart :func:`default_random` (each replay of a file samples the same frames,
    whatever was replayed before it in this process)."""
    _rng.seed(seed)
