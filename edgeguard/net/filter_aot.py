"""Generated: the shipped policies' capture filters as typed functions
(compiled ahead of time with mypyc). Do not edit; regenerate with python -m edgeguard.net.filter_aot_gen.
"""
# ruff: noqa

from __future__ import annotations

from typing import Final

from edgeguard.net.bpf import default_random

__all__ = ["PROGRAMS", "run"]


def p0_entry(f: bytes, b: int, n: int, wl: int) -> int:
    a = x = 0
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m15 = 0
    if 14 > n: return 0
    a = (f[b + 12] << 8) | f[b + 12 + 1]
    if a == 33024: return p0_b3(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 34984: return p0_b3(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    x = 14
    return p0_b7(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b3(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    if 18 > n: return 0
    a = (f[b + 16] << 8) | f[b + 16 + 1]
    x = 18
    return p0_b7(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b7(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    m15 = x
    if a == 2054: return 256
    if a == 2048:
        o = (x + 6) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        if a & 8191: return 0
        o = x
        if o + 1 > n: return 0
        a = f[b + o]
        a = a & 15
        a = (a << (2 & 31)) & 4294967295
        m1 = a
        o = (x + 9) & 4294967295
        if o + 1 > n: return 0
        a = f[b + o]
        m2 = a
        o = (x + 2) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        m0 = a
        x = m1
        a = m0
        a = (a - x) & 4294967295
        m0 = a
        a = m15
        a = (a + x) & 4294967295
        x = a
        a = m2
        return p0_b135(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 34525:
        o = (x + 4) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        m0 = a
        o = (x + 6) & 4294967295
        if o + 1 > n: return 0
        a = f[b + o]
        m2 = a
        a = x
        a = (a + 40) & 4294967295
        x = a
        a = m2
        if a == 0: return p0_b42(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
        if a == 43: return p0_b42(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
        if a == 60: return p0_b42(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
        if a == 44:
            o = (x + 2) & 4294967295
            if o + 2 > n: return 0
            a = (f[b + o] << 8) | f[b + o + 1]
            if a & 65528: return 0
            o = x
            if o + 1 > n: return 0
            a = f[b + o]
            m2 = a
            a = m0
            a = (a - 8) & 4294967295
            m0 = a
            a = x
            a = (a + 8) & 4294967295
            x = a
            a = m2
            return p0_b70(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
        return p0_b135(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    return 0
def p0_b135(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    if a == 6:
        o = (x + 13) & 4294967295
        if o + 1 > n: return 0
        a = f[b + o]
        m6 = a
        if a & 7: return 256
        if a & 16:
            if a & 32: return 256
            o = (x + 12) & 4294967295
            if o + 1 > n: return 0
            a = f[b + o]
            a = a >> (4 & 31)
            a = (a << (2 & 31)) & 4294967295
            m3 = a
            m4 = x
            x = m3
            a = m0
            a = (a - x) & 4294967295
            m5 = a
            if a > 2147483647: return 0
            if a == 0:
                a = m3
                if a == 20: return 256
                return 0
            a = m4
            a = (a + x) & 4294967295
            x = a
            a = m5
            if a > 3:
                o = x
                if o + 4 > n: return 0
                a = (f[b + o] << 24) | (f[b + o + 1] << 16) | (f[b + o + 2] << 8) | f[b + o + 3]
                if a == 323119476: return 256
                if a == 1114207316: return 256
                if a == 1769231471: return 256
                if a == 1951690610: return 256
                if a == 1416589938: return 256
                if a == 1869771365: return 256
                if a == 1920099694: return 256
                if a == 1919250036: return 256
                if a == 1701737504: return 256
                if a == 1853104240: return 256
                if a == 1948282994: return 256
                if a == 544240239: return 256
                if a == 1886547828: return 256
                if a == 1919906927: return 256
                if a == 1869901667: return 256
                if a == 1953457007: return 256
                if a == 1868787564: return 256
                if a == 1195725856: return 256
                if a == 1347375956: return 256
                if a == 1212498244: return 256
                if a == 1213486160: return 256
                if a == 1681406561: return 256
                a = a & 4294967040
                if a == 1680947712: return 256
                a = m6
                if a & 8:
                    a = m5
                    if a >= 96:
                        if a > 608: return 0
                        return 256
                    return 0
                return 0
            return 256
        return 256
    if a == 17:
        o = (x + 2) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        if a == 6771: return 256
        a = m0
        a = (a - 8) & 4294967295
        if a > 512:
            a = x
            a = (a + 8) & 4294967295
            x = a
            o = x
            if o + 4 > n: return 0
            a = (f[b + o] << 24) | (f[b + o + 1] << 16) | (f[b + o + 2] << 8) | f[b + o + 3]
            if a == 1047:
                o = (x + 4) & 4294967295
                if o + 4 > n: return 0
                a = (f[b + o] << 24) | (f[b + o + 1] << 16) | (f[b + o + 2] << 8) | f[b + o + 3]
                if a == 655366528: return 256
                return p0_b204(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
            return p0_b204(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
        return 256
    if a == 1: return 256
    if a == 58: return 256
    return 0
def p0_b42(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    o = x
    if o + 1 > n: return 0
    a = f[b + o]
    m2 = a
    o = (x + 1) & 4294967295
    if o + 1 > n: return 0
    a = f[b + o]
    a = (a + 1) & 4294967295
    a = (a << (3 & 31)) & 4294967295
    m1 = a
    m4 = x
    x = m1
    a = m0
    a = (a - x) & 4294967295
    m0 = a
    a = m4
    a = (a + x) & 4294967295
    x = a
    a = m2
    return p0_b70(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b70(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    if a == 0: return p0_b74(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 43: return p0_b74(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 60: return p0_b74(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 44:
        o = (x + 2) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        if a & 65528: return 0
        o = x
        if o + 1 > n: return 0
        a = f[b + o]
        m2 = a
        a = m0
        a = (a - 8) & 4294967295
        m0 = a
        a = x
        a = (a + 8) & 4294967295
        x = a
        a = m2
        return p0_b102(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    return p0_b135(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b204(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    o = x
    if o + 4 > n: return 0
    a = (f[b + o] << 24) | (f[b + o + 1] << 16) | (f[b + o + 2] << 8) | f[b + o + 3]
    a = a & 4294967040
    if a == 1680947712: return 256
    o = x
    if o + 1 > n: return 0
    a = f[b + o]
    if a == 17: return 256
    if a == 33: return 256
    if a == 49: return 256
    if a == 65: return 256
    a = default_random() & 4294967295
    a = a & 63
    if a == 0: return 256
    return 0
def p0_b74(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    o = x
    if o + 1 > n: return 0
    a = f[b + o]
    m2 = a
    o = (x + 1) & 4294967295
    if o + 1 > n: return 0
    a = f[b + o]
    a = (a + 1) & 4294967295
    a = (a << (3 & 31)) & 4294967295
    m1 = a
    m4 = x
    x = m1
    a = m0
    a = (a - x) & 4294967295
    m0 = a
    a = m4
    a = (a + x) & 4294967295
    x = a
    a = m2
    return p0_b102(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b102(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    if a == 0: return p0_b106(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 43: return p0_b106(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 60: return p0_b106(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    if a == 44:
        o = (x + 2) & 4294967295
        if o + 2 > n: return 0
        a = (f[b + o] << 8) | f[b + o + 1]
        if a & 65528: return 0
        o = x
        if o + 1 > n: return 0
        a = f[b + o]
        m2 = a
        a = m0
        a = (a - 8) & 4294967295
        m0 = a
        a = x
        a = (a + 8) & 4294967295
        x = a
        a = m2
        return p0_b134(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
    return p0_b135(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b106(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    o = x
    if o + 1 > n: return 0
    a = f[b + o]
    m2 = a
    o = (x + 1) & 4294967295
    if o + 1 > n: return 0
    a = f[b + o]
    a = (a + 1) & 4294967295
    a = (a << (3 & 31)) & 4294967295
    m1 = a
    m4 = x
    x = m1
    a = m0
    a = (a - x) & 4294967295
    m0 = a
    a = m4
    a = (a + x) & 4294967295
    x = a
    a = m2
    return p0_b134(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)
def p0_b134(f: bytes, b: int, n: int, wl: int, a: int, x: int, m0: int, m1: int, m2: int, m3: int, m4: int, m5: int, m6: int, m15: int) -> int:
    return p0_b135(f, b, n, wl, a, x, m0, m1, m2, m3, m4, m5, m6, m15)


def run(which: int, f: bytes, b: int, n: int, wl: int) -> int:
    """Program number ``which`` over ``f[b:b + n]`` (-1: no such program)."""
    if which == 0: return p0_entry(f, b, n, wl)
    return -1

#: program digest -> its number for run()
PROGRAMS: Final[dict[str, int]] = {
    "ff92c2fdcf316db6c09ada63": 0,
}
_ = default_random  # (used by programs that sample)
