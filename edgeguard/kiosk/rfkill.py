"""``/dev/rfkill``: read radio events, soft-block radios (``<linux/rfkill.h>``).

::

    struct rfkill_event {
        __u32 idx;    /* the radio (rfkill index) */
        __u8  type;   /* RFKILL_TYPE_*: 0 all, 1 wlan, 2 bluetooth, ... */
        __u8  op;     /* RFKILL_OP_*: 0 add, 1 del, 2 change, 3 change_all */
        __u8  soft, hard;
    } __attribute__((packed));

Opening the device queues an ``ADD`` event for every radio present (our coldplug);
afterwards each read returns one event. Newer kernels may append a ``hard_block_reasons``
byte (``rfkill_event_ext``) if asked to; we read the 8-byte v1 prefix and ignore the rest.
Writing ``CHANGE_ALL`` with a type sets every radio of that type *and* the default new
radios of that type get; writing ``CHANGE`` with an index sets one radio.
"""

from __future__ import annotations

import enum
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EVENT", "Op", "RadioType", "RfkillDevice", "RfkillEvent"]

EVENT = struct.Struct("=IBBBB")  # packed, native endian (it is a local kernel ABI)
_READ_SIZE = 64  # one event per read; room for future extensions


class RadioType(enum.IntEnum):
    ALL = 0
    WLAN = 1
    BLUETOOTH = 2
    UWB = 3
    WIMAX = 4
    WWAN = 5
    GPS = 6
    FM = 7
    NFC = 8


class Op(enum.IntEnum):
    ADD = 0
    DEL = 1
    CHANGE = 2
    CHANGE_ALL = 3


@dataclass(frozen=True, slots=True)
class RfkillEvent:
    idx: int
    type: int
    op: int
    soft: int
    hard: int

    def pack(self) -> bytes:
        return EVENT.pack(self.idx, self.type, self.op, self.soft, self.hard)

    @classmethod
    def unpack(cls, data: bytes) -> RfkillEvent:
        if len(data) < EVENT.size:
            raise ValueError(f"short rfkill event ({len(data)} bytes)")
        return cls(*EVENT.unpack_from(data))

    @property
    def type_name(self) -> str:
        try:
            return RadioType(self.type).name.lower()
        except ValueError:
            return f"type-{self.type}"

    @property
    def op_name(self) -> str:
        try:
            return Op(self.op).name.lower()
        except ValueError:
            return f"op-{self.op}"


def _open_rfkill(path: str) -> Callable[[], int]:
    def opener() -> int:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    return opener


class RfkillDevice:
    """The control device. ``opener`` is injectable: tests pass one end of a socketpair."""

    def __init__(self, path: str = "/dev/rfkill",
                 opener: Callable[[], int] | None = None) -> None:
        self.path = path
        self._opener = opener or _open_rfkill(path)
        self.fd: int | None = None
        self.malformed = 0

    def open(self) -> int:
        self.fd = self._opener()
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def read_events(self, limit: int = 256) -> list[RfkillEvent]:
        """Every event queued now (non-blocking), at most ``limit``; short ones counted."""
        assert self.fd is not None
        out: list[RfkillEvent] = []
        while len(out) < limit:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                break
            try:
                out.append(RfkillEvent.unpack(data))
            except ValueError:
                self.malformed += 1
        return out

    def write(self, event: RfkillEvent) -> None:
        assert self.fd is not None
        data = event.pack()
        written = os.write(self.fd, data)
        if written != len(data):
            raise OSError(errno.EIO, f"short write to {self.path}")

    def block(self, idx: int, radio_type: int) -> None:
        """Soft-block one radio."""
        self.write(RfkillEvent(idx, radio_type, Op.CHANGE, 1, 0))

    def block_all(self, radio_type: RadioType) -> None:
        """Soft-block every radio of a type, and the default for new ones."""
        self.write(RfkillEvent(0, radio_type, Op.CHANGE_ALL, 1, 0))
