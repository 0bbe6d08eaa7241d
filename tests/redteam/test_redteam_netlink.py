"""Forged rtnetlink against the live daemon's link watcher.

The daemon runs as root in a throwaway network namespace (Wi-Fi section on, kill switch
enforced there, not on the host), so link changes and multicast stay inside it. Who can
reach its NETLINK_ROUTE socket, found by PID the way an attacker would
(``/proc/<pid>/fd`` and ``/proc/<pid>/net/netlink``):

* an unprivileged user: nobody; unicast to the port id and multicast both get EPERM;
* root (CAP_NET_ADMIN in the namespace): unicast is refused by the kernel because the
  socket is connected to it (ECONNREFUSED); multicast to the rtnetlink groups does
  arrive, and is counted as ``rtnl_foreign`` and never believed;
* root flooding while the daemon is stopped overflows the socket (ENOBUFS): it is
  reopened, audited (``rtnl-restart``) and the link table read again.

nl80211 (generic netlink) cannot be exercised here: the host has no cfg80211, so the
daemon has no nl80211 socket (``wifi-watcher-unavailable``); its decoder is fuzzed in
tests/unit/wifi/test_nl80211.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeguard.daemon.control import request
from tests.conftest import edgeguard_argv, edgeguard_env, run_edgeguard
from tests.redteam.redteam_support import SETPRIV, User
from tests.support.daemon import Notify
from tests.support.rtnl import RTMGRP_LINK, forged, netlink_ports
from tests.support.schema import validate_lines

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

IP = "/usr/sbin/ip"
FUZZ_COUNT = 4400  # 400 of each of the corpus's eleven classes
BATCH = 200  # sent at once, then wait until the daemon has counted them
FLOOD = 6000  # while the daemon is stopped: more than its 1 MiB receive buffer holds
POLICY = """
mode: enforce
wifi:
  enabled: true
  vpn:
    interfaces: ["wg*"]
    endpoints: ["10.66.0.1:51820"]
    verify_interval: 1s
"""

#: run by root inside the namespace: forged datagrams to a port or to groups
SEND = """
import json, sys
from tests.support.rtnl import forged, send
seed, start, count, port, groups = (int(a) for a in sys.argv[1:6])
corpus = list(forged(seed, start + count))[start:]
try:
    print(json.dumps({"sent": send([f.data for f in corpus], port=port, groups=groups)}))
except OSError as exc:
    print(json.dumps({"errno": exc.errno}))
"""

#: run as the unprivileged user inside the namespace (system python, no edgeguard)
PROBE = """
import json, socket, struct, sys
msg = struct.pack("=IHHII", 32, 16, 0, 0, 0) + struct.pack("=BxHiII", 0, 1, 7, 0x10001, 0)
out = {}
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
s.bind((0, 0))
for name, addr in (("unicast", (int(sys.argv[1]), 0)), ("multicast", (0, 1))):
    try:
        s.sendto(msg, addr)
        out[name] = 0
    except OSError as exc:
        out[name] = exc.errno
print(json.dumps(out))
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=30,
                          check=check)


@dataclass
class NsDaemon:
    ns: str
    proc: subprocess.Popen[str]
    audit: Path
    socket: Path

    def in_ns(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([IP, "netns", "exec", self.ns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=False, env=edgeguard_env())

    def forge(self, seed: int, start: int, count: int, *, port: int = 0,
              groups: int = 0) -> dict[str, int]:
        done = self.in_ns(sys.executable, "-c", SEND, str(seed), str(start), str(count),
                          str(port), str(groups))
        assert done.returncode == 0, done.stderr
        result: dict[str, int] = json.loads(done.stdout)
        return result

    def counters(self) -> dict[str, int]:
        status = request(self.socket, "status")
        counters: dict[str, int] = status["sources"]["wifi"]["counters"]
        return counters

    def actions(self) -> list[str]:
        path = self.audit / "audit.jsonl"
        lines = path.read_bytes().splitlines() if path.exists() else []
        return [json.loads(line)["event"]["action"] for line in lines]

    def records(self, action: str) -> list[dict[str, Any]]:
        lines = (self.audit / "audit.jsonl").read_bytes().splitlines()
        return [r for r in map(json.loads, lines) if r["event"]["action"] == action]

    def watcher_port(self) -> int:
        """The port id of the daemon's rtnetlink socket on multicast groups."""
        ports = {p: g for p, g in netlink_ports(self.proc.pid).items() if g}
        assert len(ports) == 1, ports
        return next(iter(ports))


def _wait(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _wait_foreign(daemon: NsDaemon, count: int) -> None:
    _wait(lambda: daemon.counters()["rtnl_foreign"] >= count, f"{count} foreign datagrams")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsDaemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if shutil.which("nft") is None:
        pytest.skip("nft not installed")
    tmp = tmp_path_factory.mktemp("redteam-rtnl")
    ns = f"egrn-{os.getpid() % 100000}"
    _ip("netns", "add", ns)
    proc = None
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        notify = Notify(tmp / "notify.sock")
        audit, sock = tmp / "audit", tmp / "control.sock"
        proc = subprocess.Popen(
            [IP, "netns", "exec", ns, *edgeguard_argv(
                "run", "--policy", str(policy), "--audit-dir", str(audit),
                "--control-socket", str(sock), "--state-dir", str(tmp / "state"))],
            env=edgeguard_env({"NOTIFY_SOCKET": str(notify.path)}),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        notify.wait_for("READY=1", timeout=60)
        d = NsDaemon(ns, proc, audit, sock)
        _wait(lambda: "rtnl_events" in d.counters(), "the rtnetlink watch")
        yield d
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _ip("netns", "del", ns, check=False)


def test_the_watcher_socket_is_found_by_pid(daemon: NsDaemon) -> None:
    assert Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes().find(b"edgeguard") > 0
    assert daemon.watcher_port() != 0


def test_an_unprivileged_user_cannot_send_to_it(daemon: NsDaemon, intruder: User) -> None:
    before = daemon.counters()
    done = daemon.in_ns(SETPRIV, f"--reuid={intruder.uid}", f"--regid={intruder.gid}",
                        "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
                        "/usr/bin/python3", "-c", PROBE, str(daemon.watcher_port()))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"unicast": errno.EPERM, "multicast": errno.EPERM}
    after = daemon.counters()
    assert (after["rtnl_foreign"], after["rtnl_errors"]) == (before["rtnl_foreign"],
                                                            before["rtnl_errors"])


def test_root_unicast_to_its_port_is_refused_by_the_kernel(daemon: NsDaemon) -> None:
    before = daemon.counters()
    result = daemon.forge(21, 0, 10, port=daemon.watcher_port())
    assert result == {"errno": errno.ECONNREFUSED}
    assert daemon.counters()["rtnl_foreign"] == before["rtnl_foreign"]


def test_thousands_of_forged_messages_are_counted_and_not_believed(daemon: NsDaemon) -> None:
    """4,400 forged datagrams multicast by root where the kernel multicasts link
    changes, among them believable "wg0 up": counted exactly, never decoded, the daemon
    up and answering, nothing audited as a tunnel change."""
    before = daemon.counters()
    for start in range(0, FUZZ_COUNT, BATCH):
        assert daemon.forge(31, start, BATCH, groups=RTMGRP_LINK) == {"sent": BATCH}
        _wait_foreign(daemon, before["rtnl_foreign"] + start + BATCH)
    after = daemon.counters()
    assert after["rtnl_foreign"] - before["rtnl_foreign"] == FUZZ_COUNT
    assert after["rtnl_errors"] == before["rtnl_errors"]
    assert after["rtnl_events"] == before["rtnl_events"]
    assert after["rtnl_restarts"] == before["rtnl_restarts"] == 0
    assert sum(f.events for f in forged(31, FUZZ_COUNT)) > 0  # believable ones were sent
    assert daemon.proc.poll() is None
    assert not any(a.startswith("vpn-tunnel-") for a in daemon.actions())
    # `edgeguard status` answers, with the counters
    done = run_edgeguard(["status", "--json", "--socket", str(daemon.socket)], timeout=30)
    assert done.returncode == 0, done.stderr
    (row,) = validate_lines(done.stdout)
    counters = row["edgeguard"]["sources"]["wifi"]["counters"]
    assert counters["rtnl_foreign"] == after["rtnl_foreign"]
    assert "rtnl_errors" in counters
    assert "rtnl_restarts" in counters


def test_a_real_link_change_is_still_seen(daemon: NsDaemon) -> None:
    before = daemon.counters()
    _ip("-n", daemon.ns, "link", "add", "wg1", "type", "veth", "peer", "name", "peer1")
    _ip("-n", daemon.ns, "link", "set", "peer1", "up")
    _ip("-n", daemon.ns, "link", "set", "wg1", "up")
    _wait(lambda: "vpn-tunnel-up" in daemon.actions(), "vpn-tunnel-up for wg1")
    _ip("-n", daemon.ns, "link", "del", "wg1")
    _wait(lambda: "vpn-tunnel-down" in daemon.actions(), "vpn-tunnel-down for wg1")
    after = daemon.counters()
    assert after["rtnl_events"] > before["rtnl_events"]
    assert after["rtnl_errors"] == before["rtnl_errors"]
    assert [r["edgeguard"]["vpn"]["interface"] for r in daemon.records("vpn-tunnel-up")] == \
        ["wg1"]


def test_an_overflow_reopens_the_socket_and_rereads_the_links(daemon: NsDaemon) -> None:
    """Root floods while the daemon is stopped and a VPN link appears meanwhile: the
    socket overflows (ENOBUFS), is reopened once, audited, and the link is known."""
    before = daemon.counters()
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        assert daemon.forge(41, 0, FLOOD, groups=RTMGRP_LINK) == {"sent": FLOOD}
        _ip("-n", daemon.ns, "link", "add", "wg2", "type", "veth", "peer", "name", "peer2")
        _ip("-n", daemon.ns, "link", "set", "peer2", "up")
        _ip("-n", daemon.ns, "link", "set", "wg2", "up")
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    _wait(lambda: "rtnl-restart" in daemon.actions(), "an rtnl-restart record")
    _wait(lambda: any(r["edgeguard"]["vpn"]["interface"] == "wg2"
                      for r in daemon.records("vpn-tunnel-up")), "vpn-tunnel-up for wg2")
    after = daemon.counters()
    assert after["rtnl_restarts"] - before["rtnl_restarts"] == 1
    assert after["rtnl_foreign"] - before["rtnl_foreign"] < FLOOD  # the kernel dropped some
    assert after["rtnl_errors"] == before["rtnl_errors"]
    (record,) = daemon.records("rtnl-restart")
    assert record["event"]["outcome"] == "success"
    assert record["edgeguard"]["rtnl"]["reason"].startswith("ENOBUFS")
    validate_lines((daemon.audit / "audit.jsonl").read_bytes(), records=True)
    daemon.watcher_port()  # one socket on the groups again
    assert daemon.proc.poll() is None
