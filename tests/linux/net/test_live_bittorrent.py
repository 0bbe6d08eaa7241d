"""A real BitTorrent exchange (python3-libtorrent seeder and leecher) between two
namespaces while the daemon watches one side: the handshake is reported for both peers.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.linux.net.netns import daemon_in, lab, stop

SYSTEM_PYTHON = Path("/usr/bin/python3")
PEER = Path(__file__).with_name("lt_peer.py")


def _has_libtorrent() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    return subprocess.run([str(SYSTEM_PYTHON), "-c", "import libtorrent"], capture_output=True,
                          check=False, timeout=30).returncode == 0


pytestmark = [
    pytest.mark.linux,
    pytest.mark.skipif(not _has_libtorrent(), reason="python3-libtorrent not installed"),
]


def test_libtorrent_exchange_is_reported(tmp_path: Path) -> None:
    seed_dir, leech_dir = tmp_path / "seed", tmp_path / "leech"
    seed_dir.mkdir()
    leech_dir.mkdir()
    with lab("t") as net, daemon_in(net, tmp_path) as daemon:
        seeder = net.popen(net.a, [str(SYSTEM_PYTHON), str(PEER), "seed", str(seed_dir),
                                   net.ip_a, "51413"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        try:
            assert seeder.stdout is not None
            assert seeder.stdout.readline().strip() == "SEEDING"
            time.sleep(1.0)
            leech = net.run(net.b, str(SYSTEM_PYTHON), str(PEER), "leech", str(leech_dir),
                            net.ip_b, "6881", net.ip_a, "51413",
                            str(seed_dir / "payload.torrent"), "40", timeout=90, check=False)
            assert leech.returncode == 0, leech.stdout + leech.stderr
            assert (leech_dir / "payload.bin").read_bytes() == \
                (seed_dir / "payload.bin").read_bytes()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                actors = {a["source"]["ip"] for a in daemon.alerts()}
                if actors >= {net.ip_a, net.ip_b}:
                    break
                time.sleep(0.3)
        finally:
            stop(seeder)  # type: ignore[arg-type]
        alerts = daemon.alerts()
    kinds = {(a["edgeguard"]["finding"]["kind"], a["edgeguard"]["finding"]["subtype"])
             for a in alerts}
    assert ("bittorrent", "handshake") in kinds, kinds
    assert {k for k, _ in kinds} == {"bittorrent"}, kinds
    assert {a["source"]["ip"] for a in alerts} == {net.ip_a, net.ip_b}
