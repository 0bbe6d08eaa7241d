"""``edgeguard audit ship``: the remote shippers in a process of their own.

The enforcement daemon runs as root with CAP_SYS_ADMIN and CAP_NET_ADMIN and parses
hostile packets; giving it Internet sockets only to reach a syslog receiver widens what a
bug in it could do. Under the hardened unit it therefore opens none
(``edgeguard run --no-remote-shipping``) and this process ships instead, under a unit
with no capabilities at all (``edgeguard-ship.service``). It needs nothing from the
daemon: shippers follow the segment files from their own cursor files
(:mod:`edgeguard.audit.shipper`), so either process can restart without losing a
record, and the daemon reads the same cursor files before pruning a segment.

A receiver that cannot be reached is retried for ever from the cursor (this is a
service: the receiver may come back), and each cause of failure (refused, TLS, name
lookup...) is logged at warning once per window and written to the shipper's state file
for ``edgeguard status`` (:mod:`edgeguard.audit.shipstate`). ``--once`` instead ships
what is on disk now and exits: 0 when the receiver has it, 1 with the reason on stderr at
the first failure.

SIGHUP reloads the policy (a bad one is refused and the running one kept, as in the
daemon) and restarts the shippers when ``audit.shipping`` changed; SIGTERM stops. With
no remote destination enabled it idles, so a reload that enables one needs no other
start. systemd hears READY, RELOADING, STOPPING and WATCHDOG.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import structlog

from edgeguard.audit.segments import read_head
from edgeguard.audit.service import remote_shippers
from edgeguard.audit.shipper import Shipper, ShippingFailure
from edgeguard.daemon.notify import Notifier, watchdog_interval
from edgeguard.policy.load import LoadedPolicy, PolicyError, load_policy

__all__ = ["ShipDaemon"]

log = structlog.get_logger("edgeguard.ship")

#: How often, at most, the loop wakes when systemd asked for no watchdog pings.
_IDLE = 5.0


class ShipDaemon:
    def __init__(self, files: Sequence[Path], profile: str | None,
                 audit_dir: Path | None = None) -> None:
        self.files = tuple(files)
        self.profile = profile
        self.audit_dir_override = audit_dir
        self.loaded: LoadedPolicy = load_policy(self.files, profile)  # PolicyError: exit 2
        self.shippers: list[Shipper] = []
        self.notifier = Notifier()
        self.reloads = self.reload_failures = 0
        self._stop = threading.Event()
        self._reload = threading.Event()

    @property
    def audit_dir(self) -> Path:
        return self.audit_dir_override or Path(self.loaded.policy.audit.directory)

    def run(self) -> int:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            (self._reload if signum == signal.SIGHUP else self._stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        self._start_shippers()
        self.notifier.ready(self._status())
        interval = watchdog_interval() or _IDLE
        while not self._stop.is_set():
            self._stop.wait(interval)
            self.notifier.watchdog()
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
        self.notifier.stopping()
        self._stop_shippers()
        return 0

    def stop(self) -> None:
        self._stop.set()

    def once(self, timeout: float) -> list[ShippingFailure]:
        """Ship up to the current head, then stop: the failures (empty: all delivered).
        OSError if the audit directory cannot be read, TimeoutError if a shipper neither
        delivers nor fails in ``timeout`` seconds."""
        head = read_head(self.audit_dir)
        target = head.sequence if head is not None else 0
        self._start_shippers()
        try:
            found = [s.wait_delivered(target, timeout) for s in self.shippers]
        finally:
            self._stop_shippers()
        return [f for f in found if f is not None]

    def reload(self) -> bool:
        self.notifier.reloading()
        try:
            loaded = load_policy(self.files, self.profile)
        except PolicyError as exc:
            self.reload_failures += 1
            log.error("policy reload refused; running policy kept",
                      errors=[str(i) for i in exc.issues])
            self.notifier.ready("policy reload refused; running policy kept")
            return False
        old, self.loaded = self.loaded, loaded
        self.reloads += 1
        if old.policy.audit.shipping != loaded.policy.audit.shipping or \
                old.policy.audit.directory != loaded.policy.audit.directory:
            self._stop_shippers()
            self._start_shippers()
        self.notifier.ready(self._status())
        return True

    def _start_shippers(self) -> None:
        self.shippers = remote_shippers(self.audit_dir, self.loaded.policy.audit.shipping)
        for shipper in self.shippers:
            shipper.start()
            log.info("audit shipper started", shipper=shipper.name, audit=str(self.audit_dir))
        if not self.shippers:
            log.info("no remote audit destination enabled; idle until a reload enables one")

    def _stop_shippers(self) -> None:
        for shipper in self.shippers:
            shipper.stop()
        self.shippers = []

    def _status(self) -> str:
        names = ", ".join(s.name for s in self.shippers) or "no remote destination"
        return f"shipping {self.audit_dir} to {names}"
