"""Audit files are root:<audit.file_group> 0640 in a 0750 directory; the key stays 0600.

The writer only gives files away when it runs as root; the ownership tests need root
(they chown to a group the test process is not in) and are skipped without it.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import stat
import traceback
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from audit_helpers import sample_record, segments, write_log

from edgeguard.audit.ownership import Ownership
from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import DIRECTORY_MODE, AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.daemon.privileges import KEEP, drop_capabilities
from edgeguard.daemon.run import Daemon, DaemonOptions, StartupError
from edgeguard.policy.load import load_policy
from edgeguard.policy.types import GroupName
from tests.conftest import run_edgeguard

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")


def _other_group() -> int:
    """A group that is neither the test process's group nor root's."""
    for name in ("adm", "daemon", "sys", "nogroup"):
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        if gid not in (0, os.getgid()):
            return gid
    pytest.skip("no spare group on this host")


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@needs_root
def test_directory_and_every_segment_are_root_group_readable(tmp_path: Path) -> None:
    gid = _other_group()
    log = write_log(tmp_path / "log", 30, segment_size=1500, file_group=gid)
    assert len(segments(log)) > 2  # rotated ones and the active one
    assert _owner(log) == (0, gid, DIRECTORY_MODE)
    for path in segments(log):
        assert _owner(path) == (0, gid, 0o640), path


@needs_root
def test_existing_directory_and_segments_are_taken_over_at_start(tmp_path: Path) -> None:
    gid = _other_group()
    log = write_log(tmp_path / "log", 30, segment_size=1500)  # an older install: no group
    log.chmod(0o755)
    assert _owner(log)[1] != gid
    write_log(log, 3, segment_size=1500, file_group=gid)
    assert _owner(log) == (0, gid, DIRECTORY_MODE)
    assert {_owner(p)[1] for p in segments(log)} == {gid}


@needs_root
def test_a_changed_group_applies_on_reload(tmp_path: Path) -> None:
    gid = _other_group()
    writer = AuditWriter(tmp_path / "log", clock=FakeClock(), host="h", file_group=0)
    try:
        assert _owner(tmp_path / "log" / "audit.jsonl")[1] == 0
        writer.configure(file_group=gid)
        assert _owner(tmp_path / "log")[1] == gid
        assert _owner(tmp_path / "log" / "audit.jsonl") == (0, gid, 0o640)
    finally:
        writer.close()


@needs_root
def test_the_checkpoint_key_stays_root_only(tmp_path: Path) -> None:
    gid = _other_group()
    key_file, export = tmp_path / "state" / "audit.key", tmp_path / "k0.key"
    proc = run_edgeguard(["audit", "init", "--export-key", str(export),
                          "--key-file", str(key_file)])
    assert proc.returncode == 0, proc.stderr
    log = write_log(tmp_path / "log", 20, file_group=gid, key_file=key_file,
                    checkpoint_records=5)
    assert b'"sealed":true' in (log / "audit.jsonl").read_bytes()
    assert _owner(key_file) == (0, 0, 0o600)
    assert _owner(export) == (0, 0, 0o600)


def test_unprivileged_writer_keeps_its_own_group(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as in an unprivileged test run
    chowned: list[object] = []
    monkeypatch.setattr(os, "fchown", lambda *a: chowned.append(a))
    monkeypatch.setattr(os, "chown", lambda *a, **k: chowned.append(a))
    log = write_log(tmp_path / "log", 30, segment_size=1500, file_group=12345)
    assert chowned == []
    for path in segments(log):
        assert _owner(path)[2] == 0o640


def test_group_names_are_checked_when_the_policy_loads(tmp_path: Path) -> None:
    assert GroupName.parse(" adm ") == "adm"
    assert GroupName.parse("0").gid == 0
    with pytest.raises(ValueError, match="no group 'no-such-group-eg'"):
        GroupName.parse("no-such-group-eg")
    policy = tmp_path / "p.yaml"
    policy.write_text("audit:\n  file_group: root\n")
    assert load_policy([policy]).policy.audit.file_group.gid == 0


def test_daemon_refuses_to_start_without_its_audit_group(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("media:\n  enabled: false\n")
    loaded = load_policy([policy])
    audit = dataclasses.replace(loaded.policy.audit, file_group=GroupName("no-such-group-eg"))
    loaded = dataclasses.replace(loaded, policy=dataclasses.replace(loaded.policy, audit=audit))
    options = DaemonOptions(audit_dir=tmp_path / "audit", state_dir=tmp_path / "state",
                            control_socket=tmp_path / "c.sock")
    with pytest.raises(StartupError, match=r"audit\.file_group: no group 'no-such-group-eg'"):
        Daemon(options, loaded)
    assert not (tmp_path / "audit").exists()  # refused before anything was written


# -- without CAP_CHOWN: the daemon drops it; the set-group-ID directory keeps the group ----
def _without_chown(job: Callable[[], None]) -> None:
    """Run ``job`` in a forked child holding only the daemon's capabilities (no
    CAP_CHOWN, no CAP_FSETID), as the daemon does after start and the unit from the
    outset; fail the test if the job raised."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            drop_capabilities(KEEP)
            job()
            code = 0
        except BaseException:  # noqa: BLE001 - reported through the exit code
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the job failed in the child"


def _actions(log: Path) -> list[str]:
    return [orjson.loads(line)["event"]["action"]
            for path in segments(log) for line in path.read_bytes().splitlines()]


@needs_root
def test_segments_keep_the_group_after_chown_is_dropped(tmp_path: Path) -> None:
    gid = _other_group()
    log = write_log(tmp_path / "log", 2, file_group=gid)  # prepared while privileged
    _without_chown(lambda: write_log(log, 40, segment_size=1500, file_group=gid))
    assert len(segments(log)) > 4
    assert _owner(log) == (0, gid, DIRECTORY_MODE)
    for path in segments(log):
        assert _owner(path) == (0, gid, 0o640), path
    assert "audit-ownership-refused" not in _actions(log)


@needs_root
def test_unprepared_directory_without_chown_stays_root_only_and_says_why(
        tmp_path: Path) -> None:
    gid = _other_group()
    log = tmp_path / "log"
    log.mkdir(mode=0o700)
    _without_chown(lambda: write_log(log, 10, segment_size=1500, file_group=gid))
    assert _owner(log)[:2] == (0, 0)
    for path in segments(log):
        assert _owner(path) == (0, 0, 0o640), path  # root alone: nothing exposed
    refused = [a for a in _actions(log) if a == "audit-ownership-refused"]
    assert refused == ["audit-ownership-refused"]  # said once, not at every rotation
    assert verify_paths([log]).ok


@needs_root
def test_a_group_changed_on_reload_without_chown_waits_for_the_next_start(
        tmp_path: Path) -> None:
    gid = _other_group()
    log = write_log(tmp_path / "log", 2, file_group=0)

    def reload_to_other_group() -> None:
        writer = AuditWriter(log, clock=FakeClock(), host="h", file_group=0)
        try:
            writer.configure(file_group=gid)
            writer.write(sample_record(1))
        finally:
            writer.close()

    _without_chown(reload_to_other_group)
    assert _owner(log)[1] == 0
    assert "audit-ownership-refused" in _actions(log)
    assert verify_paths([log]).ok


@needs_root
def test_a_symlink_among_the_segments_is_left_alone(tmp_path: Path) -> None:
    gid = _other_group()
    log = write_log(tmp_path / "log", 30, segment_size=1500)
    target = tmp_path / "elsewhere"
    target.write_text("not a segment\n")
    (log / "audit-999999.jsonl").symlink_to(target)
    Ownership(log, 0o640, gid).own_directory()
    assert _owner(target)[1] != gid  # never followed
    assert _owner(log) == (0, gid, DIRECTORY_MODE)
