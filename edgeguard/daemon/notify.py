"""sd_notify over ``$NOTIFY_SOCKET`` without libsystemd (READY, RELOADING, WATCHDOG...)."""

from __future__ import annotations

import os
import socket
import time

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    """Sends state strings to systemd; a no-op when not started by systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | bytes | None = None
        if address:
            # "@name" is an abstract socket: the kernel wants a leading NUL byte.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self.sent = 0
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> bool:
        if self._address is None:
            return False
        payload = "\n".join(states).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when systemd asked this process for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return None
