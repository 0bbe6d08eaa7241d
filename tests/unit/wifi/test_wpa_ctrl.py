"""The wpa_supplicant control client against a fake supplicant socket."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.wifi.wpa_ctrl import WpaCtrl, WpaCtrlError


@pytest.fixture
def supplicant(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """An old wpa_supplicant: no BSSID_IGNORE (BLACKLIST instead), events in between."""
    got: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "wlan0"))
    server.settimeout(5)

    def serve() -> None:
        while True:
            try:
                data, peer = server.recvfrom(4096)
            except OSError:
                return
            cmd = data.decode()
            got.append(cmd)
            server.sendto(b"<3>CTRL-EVENT-SCAN-STARTED", peer)
            reply = b"UNKNOWN COMMAND\n" if cmd.startswith("BSSID_IGNORE") else b"OK\n"
            if cmd == "RECONNECT":
                reply = b"FAIL\n"
            server.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield tmp_path, got
    server.close()
    thread.join(5)


def test_blacklist_fallback_and_disconnect(supplicant: tuple[Path, list[str]]) -> None:
    ctrl_dir, got = supplicant
    wpa = WpaCtrl(ctrl_dir, "wlan0")
    assert wpa.available()
    wpa.ignore_bssid("02:00:00:00:00:01")
    wpa.disconnect()
    wpa.clear_ignored()
    with pytest.raises(WpaCtrlError, match="FAIL"):
        wpa.reconnect()
    assert got == ["BSSID_IGNORE 02:00:00:00:00:01", "BLACKLIST 02:00:00:00:00:01",
                   "DISCONNECT", "BSSID_IGNORE clear", "BLACKLIST clear", "RECONNECT"]
    assert not list(Path(tempfile.gettempdir()).glob(f"edgeguard-wpa-{os.getpid()}-*"))


def test_missing_supplicant(tmp_path: Path) -> None:
    wpa = WpaCtrl(tmp_path, "wlan9", timeout=0.2)
    assert not wpa.available()
    with pytest.raises(WpaCtrlError):
        wpa.disconnect()
