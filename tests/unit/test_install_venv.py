"""Issue 20: ``edgeguard install`` run from a virtualenv writes a unit that runs that
virtualenv's edgeguard.

The old code resolved ``realpath(sys.executable)`` out of the virtualenv, so a venv not on
``PATH`` produced ``ExecStart=/usr/…/python3.11 -m edgeguard run …``: an interpreter
without edgeguard, a service that never starts. Each test starts the drop-in's
``ExecStart=`` command line as written (its ``run …`` arguments replaced by harmless
ones) in the bare environment systemd gives a service: no PATH to the venv, no
PYTHONPATH.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

from edgeguard import __version__
from tests.conftest import ROOT

#: What systemd puts in a system service's environment (no venv, no PYTHONPATH).
SERVICE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}


def _exec_start(root: Path) -> list[str]:
    dropin = root / "etc/systemd/system/edgeguard.service.d/10-install.conf"
    lines = [line for line in dropin.read_text().splitlines()
             if line.startswith("ExecStart=") and line != "ExecStart="]
    assert len(lines) == 1, lines
    return shlex.split(lines[0].removeprefix("ExecStart="))


def _install_with(python: Path, root: Path) -> list[str]:
    subprocess.run([str(python), "-m", "edgeguard", "install", "--profile", "gateway",
                    "--root", str(root)], check=True, capture_output=True, env=SERVICE_ENV,
                   cwd="/", timeout=120)
    return _exec_start(root)


def _start_as_written(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The unit's command line with ``run …`` swapped for ``--version``, then for
    ``check`` of the starter policy install wrote."""
    cut = argv.index("run")
    assert argv[cut + 1:] == ["--log-json", "--no-remote-shipping", "--profile", "gateway"]
    version = subprocess.run([*argv[:cut], "--version"], capture_output=True, text=True,
                             env=SERVICE_ENV, cwd="/", timeout=60, check=False)
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout
    return subprocess.run([*argv[:cut], "check", "--no-host", "--profile", "gateway",
                           str(tmp_path / "root/etc/edgeguard/policy.yaml")],
                          capture_output=True, text=True, env=SERVICE_ENV, cwd="/",
                          timeout=60, check=False)


def test_unit_runs_this_virtualenvs_console_script(tmp_path: Path) -> None:
    python = Path(sys.executable)  # the test venv's bin/python (not on SERVICE_ENV's PATH)
    assert sys.prefix != sys.base_prefix, "run the tests from the project's virtualenv"
    argv = _install_with(python, tmp_path / "root")
    assert argv[0] == str(python.parent / "edgeguard")
    done = _start_as_written(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "policy OK" in done.stdout


def test_virtualenv_without_console_script_runs_its_own_interpreter(tmp_path: Path) -> None:
    """A venv where edgeguard is importable but has no ``bin/edgeguard`` (e.g. a .pth):
    the unit names the venv's ``bin/python`` (a symlink), never the base interpreter."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "edgeguard-tree.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    python = venv / "bin/python"
    argv = _install_with(python, tmp_path / "root")
    assert argv[:3] == [str(python), "-m", "edgeguard"]
    done = _start_as_written(argv, tmp_path)
    assert done.returncode == 0, done.stderr
