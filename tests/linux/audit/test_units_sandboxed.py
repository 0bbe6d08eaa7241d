"""The shipped units, run the way systemd would run them (as far as a host without systemd
as PID 1 allows: tests/support/unit_sandbox.py): ``edgeguard prepare`` first with full
privileges (``ExecStartPre=+``), then the daemon with the unit's capability bounding set
(no CAP_CHOWN), no Internet sockets (seccomp as RestrictAddressFamilies=), ``/proc``
mounted ``hidepid=invisible,subset=pid``, and ``edgeguard audit ship`` under its own unit
with no capability at all, shipping to a real rsyslog over TLS.

What must still hold: the audit trail is root:<audit group> 0640 in a 2750 directory
across rotations, the admin group reads status over the control socket and others
cannot, changing commands are audited with the peer's command line, and every record
reaches the receiver through the shipper the daemon cannot be.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from rsyslog_helpers import Rsyslog

from edgeguard.daemon.control import request
from edgeguard.daemon.privileges import KEEP, capability_sets
from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard
from tests.redteam.redteam_support import User, as_user, throwaway_group, throwaway_user
from tests.support.daemon import Notify
from tests.support.process import terminate
from tests.support.unit_sandbox import CAPABILITIES, service_settings

pytestmark = pytest.mark.linux

SYSTEMD = ROOT / "systemd"
SHIPPED_EXEC = "/usr/bin/edgeguard"


def unit_command(unit: Path, key: str, *extra: str) -> list[str]:
    """The unit's ``key=`` edgeguard command with this tree's interpreter, plus ``extra``
    (the overrides install's drop-in would add), wrapped in the unit's sandbox unless
    the command has systemd's "+" (full privileges) prefix."""
    line = service_settings(unit)[key][-1]
    privileged = line.startswith("+")
    words = shlex.split(line.lstrip("+"))
    assert words[0] == SHIPPED_EXEC, line
    argv = edgeguard_argv(*words[1:], *extra)
    if privileged:
        return argv
    return [sys.executable, "-m", "tests.support.unit_sandbox", str(unit), "--", *argv]


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class Deployment:
    base: Path
    group: str
    gid: int
    staff: User
    intruder: User
    rsyslog: Rsyslog
    daemon: subprocess.Popen[str] | None = None
    shipper: subprocess.Popen[str] | None = None

    @property
    def audit(self) -> Path:
        return self.base / "audit"

    @property
    def socket(self) -> Path:
        return self.base / "run" / "control.sock"

    @property
    def overrides(self) -> list[str]:
        return ["--policy", str(self.base / "policy.yaml"), "--audit-dir", str(self.audit)]

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for path in sorted(self.audit.glob("audit*.jsonl"))
                for line in path.read_bytes().splitlines()]

    def actions(self) -> list[str]:
        return [r["event"]["action"] for r in self.records()]


@pytest.fixture
def deployment(rsyslog: Rsyslog) -> Iterator[Deployment]:
    tag = f"{os.getpid() % 100000}"
    base = Path(f"/run/egunit-{tag}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)  # others reach the socket: only edgeguard's modes stand in the way
    with throwaway_group(f"egunadm{tag}") as gid, \
            throwaway_user(f"egunst{tag}") as staff, throwaway_user(f"egunx{tag}") as intruder:
        subprocess.run(["/usr/sbin/usermod", "-a", "-G", f"egunadm{tag}", staff.name],
                       check=True, capture_output=True, timeout=30)
        dep = Deployment(base, f"egunadm{tag}", gid, staff, intruder, rsyslog)
        (base / "policy.yaml").write_text(f"""\
media:
  enabled: false
daemon:
  admin_group: {dep.group}
  control_socket: {dep.socket}
  state_directory: {base / "state"}
audit:
  file_group: {dep.group}
  segment_size: 4KiB
  shipping:
    cursor_directory: {base / "cursors"}
    syslog:
      enabled: true
      host: 127.0.0.1
      port: {rsyslog.tls_port}
      tls: true
      ca_file: {rsyslog.ca}
      server_name: localhost
      reconnect_interval: 200ms
""")
        try:
            yield dep
        finally:
            terminate(dep.shipper)
            terminate(dep.daemon)
            shutil.rmtree(base, ignore_errors=True)


def _start(dep: Deployment) -> None:
    unit, ship_unit = SYSTEMD / "edgeguard.service", SYSTEMD / "edgeguard-ship.service"
    prepare = subprocess.run(unit_command(unit, "ExecStartPre", *dep.overrides,
                                          "--control-socket", str(dep.socket),
                                          "--state-dir", str(dep.base / "state")),
                             capture_output=True, text=True, timeout=60,
                             env=edgeguard_env(), check=False)
    assert prepare.returncode == 0, prepare.stderr
    dep.daemon = _service(dep, unit)
    dep.shipper = _service(dep, ship_unit)


def _service(dep: Deployment, unit: Path) -> subprocess.Popen[str]:
    """The unit's ExecStart in its sandbox, ready (sd_notify) within a minute."""
    notify = Notify(dep.base / f"{unit.stem}.notify")
    with (dep.base / f"{unit.stem}.log").open("w") as log:
        proc = subprocess.Popen(unit_command(unit, "ExecStart", *dep.overrides),
                                env=edgeguard_env({"NOTIFY_SOCKET": str(notify.path)}),
                                stdout=subprocess.DEVNULL, stderr=log, text=True, cwd="/")
    try:
        notify.wait_for("READY=1", timeout=60)
    except AssertionError:
        terminate(proc)
        raise AssertionError((dep.base / f"{unit.stem}.log").read_text()[-3000:]) from None
    return proc


def _status_as(dep: Deployment, user: User, groups: tuple[int, ...] = ()) -> (
        subprocess.CompletedProcess[str]):
    return as_user(user, [sys.executable, "-m", "edgeguard", "status", "--json",
                          "--socket", str(dep.socket)],
                   groups=groups, env={"PYTHONPATH": str(ROOT)})


def test_units_run_sandboxed_and_keep_every_promise(deployment: Deployment) -> None:
    dep = deployment
    _start(dep)
    assert dep.daemon is not None
    assert dep.shipper is not None
    pid = dep.daemon.pid

    # the sandbox is real: the unit's bounding set, seccomp, hidden /proc/sys
    unit = service_settings(SYSTEMD / "edgeguard.service")
    bounding = {CAPABILITIES.index(c.removeprefix("CAP_"))
                for c in unit["CapabilityBoundingSet"][-1].split()}
    assert bounding == set(KEEP)  # what the daemon keeps is what the unit allows
    caps = capability_sets(pid)
    assert caps["CapBnd"] == sum(1 << c for c in KEEP)
    assert caps["CapEff"] == sum(1 << c for c in KEEP)
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Seccomp:\t2" in status
    assert "hidepid=invisible,subset=pid" in Path(f"/proc/{pid}/mountinfo").read_text()
    assert "Seccomp:\t2" in Path(f"/proc/{dep.shipper.pid}/status").read_text()
    assert capability_sets(dep.shipper.pid)["CapEff"] == 0

    # changing commands from root, audited; rotations without CAP_CHOWN
    for _ in range(8):
        assert request(dep.socket, "reload", timeout=30)["reloaded"]
    _wait(lambda: len(list(dep.audit.glob("audit-*.jsonl"))) >= 2, "rotations")
    commands = [r for r in dep.records() if r["event"]["action"] == "control-command"]
    assert len(commands) == 8
    for record in commands:
        assert record["user"]["id"] == "0"
        assert record["process"]["pid"] > 0
        assert "test_units_sandboxed" in record["process"]["command_line"] or \
            "pytest" in record["process"]["command_line"], record["process"]
        assert record["edgeguard"]["control"]["command_line_source"] in ("proc", "client")

    # the trail: root:<group> 0640 in a 2750 directory, every segment, no refusal
    st = dep.audit.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, dep.gid, 0o2750)
    for path in dep.audit.glob("audit*.jsonl"):
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, dep.gid, 0o640), path
    assert "audit-ownership-refused" not in dep.actions()
    assert "control-socket-restricted" not in dep.actions()

    # the control socket: the admin group reads status, others cannot connect
    st = dep.socket.stat()
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (dep.gid, 0o660)
    allowed = _status_as(dep, dep.staff, groups=(dep.gid,))
    assert allowed.returncode == 0, allowed.stderr
    assert orjson.loads(allowed.stdout)["process"]["pid"] == pid
    refused = _status_as(dep, dep.intruder)
    assert refused.returncode == 1  # refused (exit 3 is reserved for "no daemon")
    assert "Permission denied" in refused.stderr

    # shipping: everything so far reaches rsyslog through edgeguard audit ship
    last = max(r["event"]["sequence"] for r in dep.records())

    def shipped() -> set[int]:
        return {orjson.loads(x)["event"]["sequence"] for x in dep.rsyslog.lines()}

    _wait(lambda: set(range(1, last + 1)) <= shipped(), "records at rsyslog", timeout=60)
    shippers = request(dep.socket, "audit.status")["shippers"]
    assert [s["name"] for s in shippers] == ["syslog-tls"]
    assert shippers[0]["process"] == "edgeguard audit ship"
    _wait(lambda: request(dep.socket, "audit.status")["shippers"][0]["cursor"] >= last,
          "the shipper's cursor seen by the daemon")
    verify = run_edgeguard(["audit", "verify", "--against", str(dep.rsyslog.output),
                            str(dep.audit)])
    assert verify.returncode == 0, verify.stdout + verify.stderr
