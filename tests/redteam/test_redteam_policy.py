"""Red team (issue 16 §3): a member of the admin group swaps a root-owned policy drop-in.

The drop-in directory was group-writable (root:admin-group 0775, an admin's slip): the
file in it is root's and 0644, so the old checks (file owner, file mode, parent not
world-writable, all through ``stat``, which follows links) accepted whatever a group
member renamed into its place, a symbolic link to any root-owned YAML included. Now
every directory from ``/`` must be root's and not group- or other-writable, the file is
opened with ``O_NOFOLLOW`` and checked with ``fstat``: the reload is refused, audited
with the reason, and the running policy stays.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeguard.fsutil import unsafe_reason
from tests.redteam.redteam_support import User, as_user
from tests.support.daemon import Daemon

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

ENFORCE = "mode: enforce\nmedia:\n  enabled: false\n"
#: What the insider wants: monitor mode, nothing enforced.
MONITOR = "mode: monitor\nmedia:\n  enabled: false\n"


@pytest.fixture
def site(admin_group: tuple[str, int]) -> Iterator[Path]:
    """``/run/egrt-pol-N`` (0755 root) holding ``policy.d/10-site.yaml`` (root 0644)
    and, elsewhere, a root-owned monitor-mode file the insider can point a link at."""
    base = Path(f"/run/egrt-pol-{os.getpid() % 100000}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    drop_in = base / "policy.d"
    drop_in.mkdir(mode=0o755)
    drop_in.chmod(0o755)
    (drop_in / "10-site.yaml").write_text(ENFORCE)
    (base / "old-monitor.yaml").write_text(MONITOR)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def reload_and_wait(daemon: Daemon, failures: int, reloads: int) -> dict[str, object]:
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = daemon.status()
        if (status["reload_failures"], status["reloads"]) == (failures, reloads):
            return status
        time.sleep(0.1)
    raise AssertionError(f"reload did not finish: {daemon.status()}")


def swap_for_link(staff: User, group: int, drop_in: Path, target: Path) -> None:
    """As the group member: a link beside the drop-in, renamed over it (rename(2) in a
    directory the group may write replaces root's file)."""
    link = drop_in / ".10-site.yaml.new"
    made = as_user(staff, ["/bin/ln", "-s", str(target), str(link)], groups=[group])
    assert made.returncode == 0, made.stderr
    moved = as_user(staff, ["/bin/mv", "-f", "-T", str(link), str(drop_in / "10-site.yaml")],
                    groups=[group])
    assert moved.returncode == 0, moved.stderr


def test_group_member_swaps_the_drop_in_for_a_link(
        tmp_path: Path, site: Path, staff: User, admin_group: tuple[str, int]) -> None:
    group = admin_group[1]
    drop_in = site / "policy.d"
    target = drop_in / "10-site.yaml"
    with Daemon.running(tmp_path, target) as daemon:
        before = daemon.status()
        assert before["mode"] == "enforce"
        # The slip: the directory handed to the admin group, group-writable.
        os.chown(drop_in, 0, group)
        drop_in.chmod(0o775)
        swap_for_link(staff, group, drop_in, site / "old-monitor.yaml")
        assert target.is_symlink()
        assert os.stat(target).st_uid == 0  # what the old check saw: root's 0644 file

        after = reload_and_wait(daemon, failures=1, reloads=0)
        assert after["mode"] == "enforce"
        assert after["policy_digest"] == before["policy_digest"]
        refused = [r for r in daemon.records()
                   if r["event"]["action"] == "policy-reload-failed"]  # type: ignore[index]
        message = refused[-1]["error"]["message"]  # type: ignore[index]
        assert f"{target}:0:0: refusing to load: directory {drop_in} is writable by group " \
               "(mode 0775)" in message

        # Directory fixed, but the link is still there: O_NOFOLLOW refuses it too.
        drop_in.chmod(0o755)
        os.chown(drop_in, 0, 0)
        again = reload_and_wait(daemon, failures=2, reloads=0)
        assert again["mode"] == "enforce"
        assert unsafe_reason(target) is not None
        assert "is a symbolic link" in str(unsafe_reason(target))

        # Positive control: root puts a regular file back; the reload is accepted.
        target.unlink()
        target.write_text(MONITOR)
        fixed = reload_and_wait(daemon, failures=2, reloads=1)
        assert fixed["mode"] == "monitor"
        assert daemon.stop() == 0


def test_group_writable_directory_higher_up_is_refused(
        site: Path, admin_group: tuple[str, int]) -> None:
    """Not just the file's own directory: any directory from ``/`` down."""
    target = site / "policy.d" / "10-site.yaml"
    assert unsafe_reason(target) is None
    os.chown(site, 0, admin_group[1])
    site.chmod(0o770)
    assert unsafe_reason(target) == (f"directory {site} is writable by group (mode 0770): "
                                     "they could swap the file for another or a link "
                                     f"(chmod go-w {site})")
    site.chmod(0o1777)  # sticky and root's, like /tmp: entries only their owner may move
    assert unsafe_reason(target) is None
    site.chmod(0o755)
    os.chown(site, 0, 0)


def test_group_member_cannot_swap_under_a_safe_directory(
        site: Path, staff: User, admin_group: tuple[str, int]) -> None:
    """Negative control for the attack itself: with the directory 0755 root the group
    member's rename fails (EACCES) and the file stays root's regular file."""
    drop_in = site / "policy.d"
    link = drop_in / ".x"
    made = as_user(staff, ["/bin/ln", "-s", "/etc/passwd", str(link)], groups=[admin_group[1]])
    assert made.returncode != 0
    assert "Permission denied" in made.stderr
    assert unsafe_reason(drop_in / "10-site.yaml") is None
