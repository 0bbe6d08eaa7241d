"""Red-team fixtures: throwaway users, and a real daemon started as root.

``intruder`` is an unprivileged user in no group of interest (a pupil or a visitor);
``staff`` is a user in the throwaway admin group (``daemon.admin_group`` and
``audit.file_group`` of the daemon under test). Both are removed at the end of the run.

The daemon's files live under ``/run/egrt-<pid>`` (0755, like /var/log and /var/lib),
so a user can reach them and only edgeguard's own permissions stand in the way: a test
that passed only because pytest's temporary directory is root-only would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard
from tests.redteam.redteam_support import User, throwaway_group, throwaway_user
from tests.support.daemon import Notify

MEDIA_POLICY = ROOT / "tests" / "data" / "media" / "policy.yaml"


def _tag() -> str:
    return f"{os.getpid() % 100000}"


@pytest.fixture(scope="session")
def admin_group() -> Iterator[tuple[str, int]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"egrtadm{_tag()}"
    with throwaway_group(name) as gid:
        yield name, gid


@pytest.fixture(scope="session")
def intruder(admin_group: tuple[str, int]) -> Iterator[User]:
    with throwaway_user(f"egrtx{_tag()}") as user:
        yield user


@pytest.fixture(scope="session")
def staff(admin_group: tuple[str, int]) -> Iterator[User]:
    with throwaway_user(f"egrts{_tag()}") as user:
        subprocess.run(["/usr/sbin/usermod", "-a", "-G", admin_group[0], user.name],
                       check=True, capture_output=True, timeout=30)
        yield user


class HostDaemon:
    """``edgeguard run`` as root on the host: media (enforce, read-only mounts), audit
    with a checkpoint key, the control socket; files under a 0755 base directory."""

    def __init__(self, base: Path, admin: str) -> None:
        self.base = base
        self.audit = base / "audit"
        self.state = base / "state"
        self.socket = base / "run" / "control.sock"
        self.key = self.state / "audit.key"
        self.mounts = base / "media"
        self.policy = base / "policy.yaml"
        self.policy.write_text(
            f"daemon:\n  admin_group: {admin}\n"
            f"media:\n  mount: true\n  mount_root: {self.mounts}\n"
            f"audit:\n  file_group: {admin}\n  key_file: {self.key}\n"
            "  checkpoint_records: 5\n  checkpoint_interval: 2s\n")
        init = run_edgeguard(["audit", "init", "--key-file", str(self.key), "--export-key",
                              str(base / "k0.key")])
        assert init.returncode == 0, init.stderr
        # Reachable state directory: the key file's own mode is what must protect it.
        self.state.chmod(0o755)
        self.notify = Notify(base / "notify.sock")
        self.proc = subprocess.Popen(
            edgeguard_argv("run", "--policy", str(MEDIA_POLICY), "--policy", str(self.policy),
                           "--audit-dir", str(self.audit), "--state-dir", str(self.state),
                           "--control-socket", str(self.socket)),
            env=edgeguard_env({"NOTIFY_SOCKET": str(self.notify.path)}),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self.notify.wait_for("READY=1", timeout=60)
        except AssertionError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def udevd() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tests.linux.media.media_sticks import udevd_with_rules  # noqa: PLC0415

    with udevd_with_rules():
        yield


@pytest.fixture(scope="module")
def host_daemon(udevd: None, admin_group: tuple[str, int]) -> Iterator[HostDaemon]:
    base = Path(f"/run/egrt-{_tag()}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    daemon = None
    try:
        daemon = HostDaemon(base, admin_group[0])
        yield daemon
    finally:
        if daemon is not None:
            daemon.stop()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            target = line.split()[4]
            if target.startswith(f"{base}/"):
                subprocess.run(["/usr/bin/umount", "--lazy", target], check=False,
                               capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)
