"""Least privilege and the control socket's gatekeeping, against a real daemon (root)."""

from __future__ import annotations

import grp
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeguard.daemon.control import ControlError, request
from edgeguard.daemon.privileges import KEEP, capability_sets
from edgeguard.fsutil import unsafe_reason
from edgeguard.policy.load import PolicyError, load_policy
from tests.support.daemon import Daemon

pytestmark = pytest.mark.linux

NOBODY = 65534


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("mode: monitor\nmedia:\n  enabled: false\n")
    sockdir = Path(tempfile.mkdtemp(prefix="eg-sock-"))
    sockdir.chmod(0o755)  # an unprivileged peer must reach the socket to be refused
    try:
        with Daemon.running(tmp_path, policy, sock=sockdir / "control.sock") as d:
            yield d
    finally:
        for leftover in sockdir.iterdir():
            leftover.unlink()
        sockdir.rmdir()


def as_user(groups: list[int], sock: Path, command: str) -> tuple[bool, Any]:
    """Run ``request`` in a forked child that dropped to uid/gid nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read)
            os.setgroups(groups)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                out: tuple[bool, Any] = (True, request(sock, command, timeout=5))
            except ControlError as exc:
                out = (False, str(exc))
            os.write(write, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result: tuple[bool, Any] = pickle.loads(data)
    return result


def test_capabilities_dropped_after_start(daemon: Daemon) -> None:
    caps = capability_sets(daemon.proc.pid)
    mask = sum(1 << c for c in KEEP)
    assert caps["CapEff"] == mask
    assert caps["CapPrm"] == mask
    assert caps["CapBnd"] == mask
    assert caps["CapAmb"] == 0
    assert caps["NoNewPrivs"] == 1


def test_socket_mode_and_group(daemon: Daemon) -> None:
    st = daemon.sock.stat()
    assert st.st_uid == 0
    assert st.st_mode & 0o777 == 0o660
    assert st.st_gid == grp.getgrnam("adm").gr_gid


def test_unprivileged_peer_is_refused_and_changes_are_audited(daemon: Daemon) -> None:
    adm = grp.getgrnam("adm").gr_gid
    ok, answer = as_user([], daemon.sock, "status")
    assert not ok
    assert "Permission denied" in answer  # 0660 root:adm: the kernel refuses the connect
    ok, answer = as_user([adm], daemon.sock, "status")
    assert ok, answer
    assert answer["pid"] == daemon.proc.pid
    ok, answer = as_user([adm], daemon.sock, "reload")
    assert not ok
    assert "reload needs root" in answer
    assert daemon.status()["reloads"] == 0
    assert request(daemon.sock, "reload")["reloaded"] is True  # root may
    records = [orjson.loads(line) for line in (daemon.audit / "audit.jsonl").read_bytes()
               .splitlines()]
    commands = [r for r in records if r["event"]["action"] == "control-command"]
    assert [(c["user"]["id"], c["event"]["outcome"]) for c in commands] == [
        (str(NOBODY), "failure"), ("0", "success")]
    assert commands[0]["process"]["pid"] > 0


def test_unsafe_policy_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("mode: enforce\n")
    path.chmod(0o666)
    with pytest.raises(PolicyError) as info:
        load_policy([path], require_safe=True)
    assert f"{path}:0:0: refusing to load: mode 0666 lets group or others write it" \
        in str(info.value)
    path.chmod(0o644)
    os.chown(path, NOBODY, NOBODY)
    assert unsafe_reason(path) == f"owned by uid {NOBODY}, not 0"
    os.chown(path, 0, 0)
    assert load_policy([path], require_safe=True).policy.mode.value == "enforce"
