"""docs/ansible/site.yml run for real with ansible-core (issue 22): a gateway and a kiosk,
each a throwaway root on this host (ansible_connection=local, edgeguard_root=DIR). The
policy is checked on the controller before anything is pushed; the package from
scripts/package.sh (dist/*.deb) is unpacked when present; the site policy is dropped
into policy.d and the daemon reloaded; a second run changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.linux

PLAYBOOK = ROOT / "docs" / "ansible" / "site.yml"
ANSIBLE = shutil.which("ansible-playbook")
EDGEGUARD = Path(sys.executable).with_name("edgeguard")
DEBS = sorted((ROOT / "dist").glob("edgeguard_*.deb"))

GATEWAY_POLICY = {"version": 1, "mode": "enforce", "network": {"interfaces": ["lo"]},
                  "audit": {"shipping": {"syslog": {"enabled": True, "host": "logs.trust.example",
                                                    "port": 2514, "tls": False, "relp": True}}}}
KIOSK_POLICY = {"version": 1, "mode": "monitor"}


def _inventory(tmp: Path, kiosk_policy: dict[str, Any]) -> Path:
    def host(name: str, policy: dict[str, Any]) -> dict[str, Any]:
        return {name: {"edgeguard_root": str(tmp / name), "edgeguard_site_policy": policy}}
    common: dict[str, Any] = {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
        "edgeguard_controller_bin": str(EDGEGUARD), "edgeguard_check_dir": str(tmp / "check"),
        # the staging roots have no daemon: a reload is recorded, one line each
        "edgeguard_reload_argv": ["sh", "-c", "echo reload >> {{ edgeguard_root }}/reloads"],
    }
    if DEBS:
        common["edgeguard_deb"] = str(DEBS[-1])
    inv = {"all": {"vars": common, "children": {
        "gateways": {"hosts": host("gw1", GATEWAY_POLICY)},
        "kiosks": {"hosts": host("kiosk1", kiosk_policy)}}}}
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    (tmp / "check").mkdir(exist_ok=True)
    return path


def _play(tmp: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE is not None
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible"),
           "ANSIBLE_HOME": str(tmp / "ansible"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_STDOUT_CALLBACK": "default"}
    return subprocess.run([ANSIBLE, "-i", str(inventory), str(PLAYBOOK)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def _recap(out: str) -> dict[str, dict[str, int]]:
    recap = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", out.split("PLAY RECAP", 1)[1], re.M):
        recap[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return recap


@pytest.fixture(autouse=True)
def _needs_ansible() -> None:
    if ANSIBLE is None:
        pytest.skip("ansible-core is not installed (ci/apt.d/audit.txt)")


def test_gateway_and_kiosk_plays_push_once_and_a_second_run_changes_nothing(
        tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, KIOSK_POLICY)
    first = _play(tmp_path, inventory)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    for name, policy in (("gw1", GATEWAY_POLICY), ("kiosk1", KIOSK_POLICY)):
        root = tmp_path / name
        site = root / "etc" / "edgeguard" / "policy.d" / "50-site.yaml"
        assert yaml.safe_load(site.read_text()) == policy
        assert (root / "reloads").read_text() == "reload\n"  # reloaded once
        if DEBS:  # the package's files are in the root
            assert (root / "usr" / "lib" / "edgeguard" / "bin" / "edgeguard").exists()
        # what the host's daemon would load: the profile and the site policy, valid
        check = subprocess.run([str(EDGEGUARD), "check", "--no-host", "--profile",
                                "gateway" if name == "gw1" else "kiosk", str(site)],
                               capture_output=True, text=True, check=False, timeout=60)
        assert check.returncode == 0, check.stdout
    assert _recap(first.stdout)["gw1"]["changed"] >= 2

    second = _play(tmp_path, inventory)
    assert second.returncode == 0, second.stdout[-3000:]
    recap = _recap(second.stdout)
    assert recap["gw1"]["changed"] == 0, second.stdout[-3000:]
    assert recap["kiosk1"]["changed"] == 0, second.stdout[-3000:]
    assert (tmp_path / "gw1" / "reloads").read_text() == "reload\n"  # no second reload


def test_a_bad_policy_is_refused_on_the_controller_and_nothing_is_pushed(
        tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, {"version": 1, "mode": "nonsense"})
    run = _play(tmp_path, inventory)
    assert run.returncode != 0
    assert "expected one of 'monitor', 'enforce'" in run.stdout
    assert not (tmp_path / "gw1").exists()  # any_errors_fatal: not even the good gateway
    assert not (tmp_path / "kiosk1").exists()
    assert json.dumps(_recap(run.stdout)["kiosk1"]).count('"failed": 1') == 1
