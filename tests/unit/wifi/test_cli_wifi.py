"""`edgeguard wifi status` against a control socket serving a replayed component."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.daemon.component import Peer
from tests.conftest import run_edgeguard
from tests.support.control import serve_control
from tests.support.schema import validate_lines

from . import recordings as r
from .harness import replay


def serve(sock: Path, status: dict[str, Any]) -> Iterator[Path]:
    async def handler(peer: Peer, args: object) -> dict[str, Any]:
        return status

    with serve_control(sock, {"wifi.status": handler}):
        yield sock


def recording(tmp_path: Path, *entries: dict[str, object]) -> Path:
    path = tmp_path / "rec.jsonl"
    path.write_text(r.render([r.header("cli"), r.interfaces(), r.scan_dump(), *entries]))
    return path


@pytest.fixture
def trusted(tmp_path: Path) -> Iterator[Path]:
    run = replay(recording(tmp_path, r.connect(r.TRUST), r.scan_dump(
        r.bss(r.TRUST, "trust-staff", "wpa3-enterprise", True, True, freq=5180))), tmp_path)
    sock = tmp_path / "control.sock"
    yield from serve(sock, run.component.status())


@pytest.fixture
def refused(tmp_path: Path) -> Iterator[Path]:
    run = replay(recording(tmp_path, r.connect(r.CAFE), r.scan_dump(
        r.bss(r.CAFE, "cafe", "open", False, True))), tmp_path, mode="monitor")
    sock = tmp_path / "control.sock"
    yield from serve(sock, run.component.status())


def test_text_status_on_a_trusted_network(trusted: Path) -> None:
    done = run_edgeguard(["wifi", "status", "--socket", str(trusted)])
    assert done.returncode == 0, done.stderr
    assert "'trust-staff' 02:00:00:00:03:03  5180 MHz" in done.stdout
    assert "security   wpa3-enterprise  akm 802.1x-sha256" in done.stdout
    assert "trusted: no VPN needed" in done.stdout
    assert "kill switch  lifted (policy wants lifted" in done.stdout


def test_json_status_of_a_refused_network_exits_1(refused: Path) -> None:
    done = run_edgeguard(["wifi", "status", "--json", "--socket", str(refused)])
    assert done.returncode == 1
    rows = validate_lines(done.stdout)
    assert [r["event"]["action"] for r in rows] == ["wifi-association-state",
                                                   "vpn-kill-switch-state"]
    wifi = rows[0]["edgeguard"]["wifi"]
    assert (wifi["security"], wifi["verdict"], wifi["ssid"]) == ("open", "refuse", "cafe")
    vpn = rows[1]["edgeguard"]["vpn"]
    assert vpn["kill_switch"]["wanted"] == "engaged"
    assert rows[1]["edgeguard"]["mode"] == "monitor"


def test_unreachable_daemon_is_the_no_daemon_status(tmp_path: Path) -> None:
    done = run_edgeguard(["wifi", "status", "--socket", str(tmp_path / "none.sock")])
    assert done.returncode == 3
    assert "cannot reach edgeguard" in done.stderr
