"""Printable text from record fields an attacker may control (an SSID, a USB serial).

A private stand-in for the shared helper (``edgeguard.textsafe``) until that lands:
control characters (C0, DEL, C1) and the Unicode line/paragraph separators and bidi
overrides become visible ``\\xNN`` / ``\\uNNNN`` escapes, so a record cannot move the
cursor, clear the screen or reorder what a terminal shows.
"""

from __future__ import annotations

__all__ = ["printable"]

_BIDI_AND_SEPARATORS = frozenset(
    [0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control or bidi character escaped (a backslash stays as is)."""
    return "".join(_escape(ch) if (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0
                                   or ord(ch) in _BIDI_AND_SEPARATORS) else ch
                   for ch in text)
