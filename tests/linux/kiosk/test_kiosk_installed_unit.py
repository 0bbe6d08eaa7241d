"""The installed unit, as root: ownership of the audit directory, `systemd-analyze verify`
on the unit together with install's drop-in, and the `systemd-analyze security` exposure
score (printed; asserted only to stay in systemd's "OK" band)."""

from __future__ import annotations

import grp
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import edgeguard_env, run_edgeguard

pytestmark = [pytest.mark.linux,
              pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                 reason="needs systemd-analyze (package systemd)")]

EXEC = f"{sys.executable} -m edgeguard"


def _install(root: Path, profile: str) -> None:
    result = run_edgeguard(["install", "--profile", profile, "--root", str(root),
                            "--exec", EXEC])
    assert result.returncode == 0, result.stderr


UNITS = ("edgeguard.service", "edgeguard-ship.service")


def _unit_dir(root: Path, tmp: Path) -> Path:
    """The installed units and their drop-ins side by side, as systemd's unit path sees
    them."""
    units = tmp / "units"
    units.mkdir()
    for name in UNITS:
        shutil.copy(root / "usr/lib/systemd/system" / name, units)
        shutil.copytree(root / "etc/systemd/system" / f"{name}.d", units / f"{name}.d")
    return units


def _analyze(units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = edgeguard_env({"SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_COLOR": "0"})
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


@pytest.mark.parametrize("profile", ["kiosk", "gateway"])
def test_installed_unit_verifies_and_scores(tmp_path: Path, profile: str) -> None:
    root = tmp_path / "root"
    _install(root, profile)
    audit = (root / "var/log/edgeguard").stat()
    assert audit.st_uid == 0
    assert audit.st_gid == grp.getgrnam("adm").gr_gid
    assert audit.st_mode & 0o7777 == 0o2750
    units = _unit_dir(root, tmp_path)
    for name in UNITS:
        verify = _analyze(units, "verify", str(units / name))
        assert verify.returncode == 0, verify.stderr
        assert verify.stderr.strip() == ""
        security = _analyze(units, "security", "--offline=true", "--no-pager",
                            str(units / name))
        assert security.returncode == 0, security.stderr
        match = re.search(rf"Overall exposure level for {name}: ([0-9.]+) (\w+)",
                          security.stdout)
        assert match, security.stdout[-2000:]
        print(f"\nsystemd-analyze security {name} ({profile}): exposure {match.group(1)} "
              f"{match.group(2)}")
        assert float(match.group(1)) <= 2.5  # the goal; systemd's "OK" band


def test_drop_in_is_what_systemd_runs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _install(root, "kiosk")
    units = _unit_dir(root, tmp_path)
    (units / "edgeguard.service.d" / "10-install.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/nonexistent/edgeguard run --profile kiosk\n")
    verify = _analyze(units, "verify", str(units / "edgeguard.service"))
    assert verify.returncode != 0
    assert "/nonexistent/edgeguard" in verify.stderr


def test_uninstall_as_root_keeps_the_audit_log(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _install(root, "kiosk")
    (root / "var/log/edgeguard/audit.jsonl").write_text("{}\n")
    result = run_edgeguard(["uninstall", "--root", str(root)])
    assert result.returncode == 0, result.stderr
    assert (root / "var/log/edgeguard/audit.jsonl").exists()
    assert not (root / "usr/lib/systemd/system/edgeguard.service").exists()
    result = run_edgeguard(["uninstall", "--root", str(root), "--purge"])
    assert result.returncode == 0
    assert not (root / "var/log/edgeguard").exists()
