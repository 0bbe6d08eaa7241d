"""Issue 16 §1 against the live daemon: root deletes the trail and restarts edgeguard on
the key file it left behind (K(E), E > 0). Before the fix ``verify --key K0`` said ok
(epochs 0..E-1 silently missing); now the first sealed epoch must be 0."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the daemon's files)")


def _policy(tmp_path: Path, key: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"media:\n  enabled: false\naudit:\n  key_file: {key}\n"
                    "  checkpoint_interval: 1s\n")
    return path


def _run_until_sealed(tmp_path: Path, policy: Path, count: int) -> None:
    daemon = Daemon(tmp_path, policy)
    try:
        daemon.notify.wait_for("READY=1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(
                1 for r in daemon.records()
                if r["event"]["action"] == "audit-checkpoint") < count:  # type: ignore[index]
            time.sleep(0.2)
    finally:
        assert daemon.stop() == 0
        daemon.notify.sock.close()
        daemon.notify.path.unlink()


def test_trail_deleted_and_daemon_restarted_on_the_stolen_key_is_refused(
        tmp_path: Path) -> None:
    key, export = tmp_path / "state" / "audit.key", tmp_path / "k0.key"
    assert run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key)]).returncode == 0
    policy = _policy(tmp_path, key)
    _run_until_sealed(tmp_path, policy, 3)
    audit = tmp_path / "audit"
    honest = run_edgeguard(["audit", "verify", "--key", str(export), str(audit)])
    assert honest.returncode == 0, honest.stdout
    epoch = next(orjson.loads(x) for x in key.read_bytes().split(b"\n") if x.strip())["epoch"]
    assert epoch >= 3
    shutil.rmtree(audit)  # the intruder removes the whole trail ...
    _run_until_sealed(tmp_path, policy, 1)  # ... and lets the daemon start a new one
    forged = run_edgeguard(["audit", "verify", "--key", str(export), str(audit)])
    assert forged.returncode == 1, forged.stdout
    assert "checkpoint-epoch: the first sealed checkpoint has epoch" in forged.stdout
