"""Text for a terminal: control characters shown, never obeyed (issue 16 §4).

An SSID, a USB vendor/model/serial string, a host name or a file path comes from
whoever built the device, the beacon or the file. Printed raw, ``ESC [ 2 J`` clears the
screen, ``ESC ] 0 ; ... BEL`` sets the terminal title, a carriage return overwrites
the line and a bidi override reorders it: a hostile string can fake table rows.

:func:`escape` replaces each such character with ``\\uXXXX``: C0 controls except tab
and newline (carriage return included), DEL, the C1 controls U+0080..U+009F, the
Unicode line/paragraph separators and the bidi embedding, override and isolate marks.
``\\uXXXX`` is also a JSON escape for the same character, so JSON text passed through
it still decodes to exactly the same values. A backslash is left as it is: an SSID that
literally contains the six characters ``\\u001b`` prints the same as one holding ESC
(``--json`` tells them apart).

:func:`escaped_output` wraps ``sys.stdout`` and ``sys.stderr`` for the length of a
command, so every human-readable line of the CLI goes through :func:`escape`.
``--json`` output is written to ``sys.stdout.buffer`` as bytes and stays exact.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["CONTROL_CHARACTERS", "EscapingWriter", "escape", "escaped_output", "write_styled"]

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
#: Code points :func:`escape` replaces.
CONTROL_CHARACTERS: frozenset[int] = frozenset(
    {c for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F} | set(range(0x80, 0xA0))
    | {0x2028, 0x2029} | set(_BIDI))
_TABLE = {c: f"\\u{c:04x}" for c in CONTROL_CHARACTERS}


def escape(text: str) -> str:
    """``text`` with every character of :data:`CONTROL_CHARACTERS` as ``\\uXXXX``."""
    return text.translate(_TABLE)


class EscapingWriter(io.TextIOWrapper):
    """A text stream over a binary buffer that escapes everything written to it."""

    def write(self, s: str) -> int:
        super().write(escape(s))
        return len(s)


def _wrap(stream: object) -> EscapingWriter | None:
    if not isinstance(stream, io.TextIOWrapper) or isinstance(stream, EscapingWriter):
        return None
    stream.flush()
    return EscapingWriter(stream.buffer, encoding=stream.encoding, errors=stream.errors,
                          line_buffering=stream.line_buffering, write_through=True)


@contextlib.contextmanager
def escaped_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` escape control characters inside the block.

    Streams that are not text wrappers over a binary buffer (a test's ``StringIO``) are
    left alone. The wrappers are detached, not closed, at the end: the buffers stay
    open for whoever owns them.
    """
    old_out, old_err = sys.stdout, sys.stderr
    new_out, new_err = _wrap(old_out), _wrap(old_err)
    if new_out is not None:
        sys.stdout = new_out
    if new_err is not None:
        sys.stderr = new_err
    try:
        yield
    finally:
        for new in (new_out, new_err):
            if new is not None:
                with contextlib.suppress(ValueError, OSError):
                    new.flush()
                new.detach()
        sys.stdout, sys.stderr = old_out, old_err



def write_styled(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to ``stream`` (stdout) as it is, past :func:`escaped_output`.

    Only for text whose every untrusted part already went through :func:`escape` and
    which adds our own terminal codes (``audit tail``'s colours, replay's progress
    line): the wrapper would otherwise show those codes as ``\\u001b``.
    """
    out = sys.stdout if stream is None else stream
    if isinstance(out, EscapingWriter):
        out.flush()
        out.buffer.write(text.encode(out.encoding or "utf-8", out.errors or "strict"))
        out.buffer.flush()
    else:
        out.write(text)
        out.flush()
