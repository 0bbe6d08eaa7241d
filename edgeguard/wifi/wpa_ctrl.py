"""A minimal wpa_supplicant control-socket client (DISCONNECT, BSSID_IGNORE, RECONNECT).

When wpa_supplicant manages the interface, asking it to disconnect beats a bare nl80211
DISCONNECT: it will not immediately re-associate, and ``BSSID_IGNORE`` (``BLACKLIST``
before wpa_supplicant 2.10) keeps it from choosing the refused access point again. The
protocol is one datagram per command over a UNIX datagram socket at
``<ctrl_dir>/<ifname>``; the client binds its own socket so the reply can come back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import tempfile
from pathlib import Path

__all__ = ["WpaCtrl", "WpaCtrlError"]

REPLY_TIMEOUT = 2.0  # seconds; wpa_supplicant answers at once or is stuck
_counter = itertools.count()


class WpaCtrlError(Exception):
    """wpa_supplicant is not there, did not answer, or refused the command."""


class WpaCtrl:
    def __init__(self, ctrl_dir: Path, ifname: str, timeout: float = REPLY_TIMEOUT) -> None:
        self.path = ctrl_dir / ifname
        self.timeout = timeout

    def available(self) -> bool:
        return self.path.is_socket()

    def request(self, command: str) -> str:
        verb = command.split(maxsplit=1)[0]
        local = Path(tempfile.gettempdir()) / f"edgeguard-wpa-{os.getpid()}-{next(_counter)}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.bind(str(local))
                sock.connect(str(self.path))
                sock.send(command.encode())
                while True:
                    reply = sock.recv(4096).decode("utf-8", "replace")
                    if not reply.startswith("<"):  # unsolicited event messages start with <N>
                        return reply.strip()
            except TimeoutError:
                raise WpaCtrlError(f"{self.path}: no answer to {verb}") from None
            except OSError as exc:
                raise WpaCtrlError(f"{self.path}: {exc.strerror or exc}") from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    local.unlink()

    def _ok(self, command: str) -> None:
        reply = self.request(command)
        if reply != "OK":
            raise WpaCtrlError(f"{command.split(maxsplit=1)[0]}: {reply or 'empty reply'}")

    def ignore_bssid(self, bssid: str) -> None:
        """Keep wpa_supplicant off this access point (BSSID_IGNORE, else BLACKLIST)."""
        reply = self.request(f"BSSID_IGNORE {bssid}")
        if reply.startswith("UNKNOWN COMMAND"):
            reply = self.request(f"BLACKLIST {bssid}")
        if reply != "OK":
            raise WpaCtrlError(f"BSSID_IGNORE: {reply or 'empty reply'}")

    def clear_ignored(self) -> None:
        reply = self.request("BSSID_IGNORE clear")
        if reply.startswith("UNKNOWN COMMAND"):
            reply = self.request("BLACKLIST clear")
        if reply != "OK":
            raise WpaCtrlError(f"BSSID_IGNORE clear: {reply or 'empty reply'}")

    def disconnect(self) -> None:
        self._ok("DISCONNECT")

    def reconnect(self) -> None:
        self._ok("RECONNECT")
