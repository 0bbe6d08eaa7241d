"""An unprivileged user against the live daemon: audit trail, keys, control socket,
signals, and forged uevents.

Each test has a positive control where it matters (a member of the admin group *can*
read the trail and the status; root *can* reload), so a failure to act proves the
control, not a broken test.
"""

from __future__ import annotations

import json
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeguard.daemon.control import request
from tests.conftest import ROOT
from tests.redteam.conftest import HostDaemon
from tests.redteam.redteam_support import User, as_user

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

USER_ENV = {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def _cli(user: User, *args: str, groups: tuple[int, ...] = ()) -> Any:
    return as_user(user, [sys.executable, "-m", "edgeguard", *args], groups=groups,
                   env=USER_ENV)


#: A raw control-socket client: what an attacker would use instead of the CLI (which
#: refuses some commands for non-root before it even connects).
RAW_REQUEST = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": exc.strerror}))
    sys.exit(0)
s.sendall(json.dumps({"command": sys.argv[2], "args": json.loads(sys.argv[3])}).encode() + b"\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.decode())
"""

CHANGES = (("reload", {}),
           ("media.allow", {"device": "loop0", "seconds": 3600, "reason": "red team"}))


def _raw(user: User, sock: Path, command: str, args: dict[str, Any],
         groups: tuple[int, ...] = ()) -> dict[str, Any]:
    result = as_user(user, [sys.executable, "-c", RAW_REQUEST, str(sock), command,
                            json.dumps(args)], groups=groups)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _records(daemon: HostDaemon) -> list[dict[str, Any]]:
    out = []
    for path in sorted(daemon.audit.glob("*.jsonl")):
        out.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return out


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- the audit trail and the keys --------------------------------------------------------
def test_intruder_cannot_read_the_audit_trail(host_daemon: HostDaemon, intruder: User,
                                              staff: User, admin_group: tuple[str, int]
                                              ) -> None:
    gid = admin_group[1]
    active = host_daemon.audit / "audit.jsonl"
    st_dir, st_file = host_daemon.audit.stat(), active.stat()
    assert (st_dir.st_uid, st_dir.st_gid, stat.S_IMODE(st_dir.st_mode)) == (0, gid, 0o2750)
    assert (st_file.st_uid, st_file.st_gid, stat.S_IMODE(st_file.st_mode)) == (0, gid, 0o640)
    denied = as_user(intruder, ["/usr/bin/cat", str(active)])
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr
    listing = as_user(intruder, ["/usr/bin/ls", str(host_daemon.audit)])
    assert listing.returncode != 0
    # positive control: the audit group reads the trail, and it verifies
    readable = as_user(staff, ["/usr/bin/cat", str(active)], groups=(gid,))
    assert readable.returncode == 0, readable.stderr
    assert '"edgeguard-started"' in readable.stdout
    verified = _cli(staff, "audit", "verify", str(host_daemon.audit), groups=(gid,))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_nobody_but_root_reads_the_checkpoint_key(host_daemon: HostDaemon, intruder: User,
                                                  staff: User, admin_group: tuple[str, int]
                                                  ) -> None:
    key = host_daemon.key
    st = key.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o755  # only the file's mode protects it
    for user, groups in ((intruder, ()), (staff, (admin_group[1],))):
        result = as_user(user, ["/usr/bin/cat", str(key)], groups=groups)
        assert result.returncode != 0
        assert "Permission denied" in result.stderr
        replace = as_user(user, ["/usr/bin/cp", "/dev/null", str(key)], groups=groups)
        assert replace.returncode != 0
    assert key.stat().st_size == st.st_size
    # the daemon holds and evolves the key: its checkpoints are sealed
    _wait(lambda: any(r["event"]["action"] == "audit-checkpoint"
                      and r["edgeguard"]["checkpoint"]["sealed"] for r in _records(host_daemon)),
          "a sealed checkpoint")


# -- the control socket ------------------------------------------------------------------
def test_intruder_cannot_use_the_control_socket(host_daemon: HostDaemon,
                                                intruder: User) -> None:
    status = _cli(intruder, "status", "--socket", str(host_daemon.socket))
    assert status.returncode != 0
    assert "Permission denied" in status.stderr, status.stderr
    for command, args in (("status", {}), *CHANGES):
        answer = _raw(intruder, host_daemon.socket, command, args)
        assert answer == {"connect_error": "Permission denied"}, (command, answer)
    assert host_daemon.alive()


def test_even_a_world_writable_socket_only_answers_root_and_staff(
        host_daemon: HostDaemon, intruder: User) -> None:
    """SO_PEERCRED is checked per request: a socket someone made 0666 still refuses."""
    sock = host_daemon.socket
    before = stat.S_IMODE(sock.stat().st_mode)
    sock.chmod(0o666)
    try:
        status = _raw(intruder, sock, "status", {})
        assert status == {"ok": False, "error": "status needs root or the admin group"}
        for command, args in CHANGES:
            answer = _raw(intruder, sock, command, args)
            assert answer == {"ok": False, "error": f"{command} needs root"}, answer
    finally:
        sock.chmod(before)


def test_staff_can_read_status_but_not_change_anything(
        host_daemon: HostDaemon, staff: User, admin_group: tuple[str, int]) -> None:
    gid = admin_group[1]
    status = _cli(staff, "status", "--json", "--socket", str(host_daemon.socket),
                  groups=(gid,))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["process"]["pid"] == host_daemon.pid
    listed = _cli(staff, "media", "list", "--json", "--socket", str(host_daemon.socket),
                  groups=(gid,))
    assert listed.returncode == 0, listed.stderr
    before = request(host_daemon.socket, "status")
    for command, args in CHANGES:
        answer = _raw(staff, host_daemon.socket, command, args, groups=(gid,))
        assert answer == {"ok": False, "error": f"{command} needs root"}, answer
    after = request(host_daemon.socket, "status")
    assert after["reloads"] == before["reloads"]
    assert after["policy_digest"] == before["policy_digest"]
    # every refused attempt is on the record, with who and what
    _wait(lambda: sum(1 for r in _records(host_daemon)
                      if r["event"]["action"] == "control-command"
                      and r["user"]["id"] == str(staff.uid)) >= 2, "refusal records")
    refusals = [r for r in _records(host_daemon) if r["event"]["action"] == "control-command"
                and r["user"]["id"] == str(staff.uid)]
    assert {r["event"]["outcome"] for r in refusals} == {"failure"}
    assert {r["edgeguard"]["control"]["command"] for r in refusals} >= {"reload", "media.allow"}
    assert all(r["process"]["command_line"].startswith(sys.executable) for r in refusals)


def test_root_can_change_things(host_daemon: HostDaemon) -> None:
    """The positive control for the refusals above."""
    before = request(host_daemon.socket, "status")["reloads"]
    assert request(host_daemon.socket, "reload")["reloaded"] is True
    assert request(host_daemon.socket, "status")["reloads"] == before + 1


# -- signals -----------------------------------------------------------------------------
KILL_SCRIPT = """
import os, sys
errors = []
for sig in map(int, sys.argv[2:]):
    try:
        os.kill(int(sys.argv[1]), sig)
        errors.append("sent")
    except PermissionError:
        errors.append("EPERM")
print(" ".join(errors))
"""


@pytest.mark.parametrize("who", ["intruder", "staff"])
def test_users_cannot_signal_or_stop_the_daemon(host_daemon: HostDaemon, intruder: User,
                                                staff: User, admin_group: tuple[str, int],
                                                who: str) -> None:
    user, groups = (intruder, ()) if who == "intruder" else (staff, (admin_group[1],))
    sigs = [signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP, signal.SIGHUP, signal.SIGINT,
            signal.SIGUSR1]
    result = as_user(user, [sys.executable, "-c", KILL_SCRIPT, str(host_daemon.pid),
                            *(str(int(s)) for s in sigs)], groups=groups)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EPERM"] * len(sigs)
    shell_kill = as_user(user, ["/bin/kill", "-TERM", str(host_daemon.pid)], groups=groups)
    assert shell_kill.returncode != 0
    assert "not permitted" in shell_kill.stderr
    time.sleep(0.5)
    assert host_daemon.alive()
    assert request(host_daemon.socket, "status")["pid"] == host_daemon.pid
