"""What the daemon knows of a control-socket peer without reading another process's
/proc (the unit mounts it hidepid=invisible,subset=pid), and of its own boot and
capabilities without /proc/sys."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from edgeguard.daemon.component import Peer
from edgeguard.daemon.control import _with_command_line, parse_request, peer_of
from edgeguard.daemon.privileges import last_cap
from edgeguard.kiosk.bootset import BOOT_ID, BOOT_ID_ENV, read_boot_id


def test_peer_credentials_and_groups_come_from_the_kernel() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = peer_of(left)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert peer.groups == frozenset(os.getgroups())


def test_command_line_from_proc_when_readable_else_as_the_client_sent_it() -> None:
    me = _with_command_line(Peer(os.getpid(), 0, 0), "claimed words")
    assert me.command_line_source == "proc"
    assert me.command_line == Path("/proc/self/cmdline").read_bytes().replace(
        b"\0", b" ").decode().strip()
    gone = _with_command_line(Peer(2**22 + 7, 0, 0), "edgeguard reload")  # no such pid
    assert (gone.command_line, gone.command_line_source) == ("edgeguard reload", "client")
    # the client's words are taken from the request only when they are text, cut short
    odd = parse_request(b'{"command": "status", "command_line": {"not": "text"}}\n', 4096)
    assert odd.command_line == ""
    long = parse_request(b'{"command": "status", "command_line": "' + b"x" * 10_000 + b'"}\n',
                         65536)
    assert len(_with_command_line(Peer(2**22 + 7, 0, 0), long.command_line).command_line) \
        == 4096


def test_boot_id_from_systemd_when_proc_sys_is_hidden(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    boot = uuid.uuid4()
    monkeypatch.setenv(BOOT_ID_ENV, boot.hex)  # systemd's %b: no dashes
    assert read_boot_id(tmp_path / "hidden") == str(boot)  # the kernel's spelling
    monkeypatch.setenv(BOOT_ID_ENV, "not-an-id")
    assert read_boot_id(tmp_path / "hidden") == "unknown"
    monkeypatch.delenv(BOOT_ID_ENV)
    if BOOT_ID.exists():
        assert read_boot_id() == BOOT_ID.read_text().strip()


def test_last_capability_without_proc_sys() -> None:
    path = Path("/proc/sys/kernel/cap_last_cap")
    if not path.exists():
        pytest.skip("no /proc/sys here to compare with")
    assert last_cap() == int(path.read_text())
