"""Two throwaway network namespaces joined by a veth pair (names start with ``egc-``).

Traffic between them never leaves the pair: no bridge, no route to anything else.
Everything is removed at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import edgeguard_argv, edgeguard_env
from tests.support.daemon import Notify

IP = "/usr/sbin/ip"

__all__ = ["IP", "Lab", "NetDaemon", "daemon_in", "lab", "stop"]


@dataclass(frozen=True, slots=True)
class Lab:
    a: str  # namespace of the "attacker"/client side
    b: str  # namespace of the watched side (capture runs here)
    veth_a: str
    veth_b: str
    ip_a: str
    ip_b: str
    mac_a: str
    mac_b: str

    def argv(self, ns: str, *cmd: str) -> list[str]:
        return [IP, "netns", "exec", ns, *cmd]

    def run(self, ns: str, *cmd: str, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(ns, *cmd), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def popen(self, ns: str, cmd: Sequence[str], **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(ns, *cmd), text=True, **kw)  # type: ignore[call-overload]


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def lab(tag: str = "") -> Iterator[Lab]:
    n = f"{os.getpid() % 10000}{tag}"
    a, b = f"egc-a{n}", f"egc-b{n}"
    va, vb = f"egca{n}"[:15], f"egcb{n}"[:15]
    mac_a, mac_b = "02:ec:00:00:00:0a", "02:ec:00:00:00:0b"
    ip_a, ip_b = "10.231.7.10", "10.231.7.20"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", va, "address", mac_a, "netns", a, "type", "veth", "peer", "name", vb,
            "address", mac_b, "netns", b)
        for ns, dev, addr in ((a, va, ip_a), (b, vb, ip_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # wire-sized frames, as on a real NIC (no GSO/GRO super-frames)
            subprocess.run([IP, "netns", "exec", ns, "/usr/sbin/ethtool", "-K", dev, "tso", "off",
                            "gso", "off", "gro", "off", "tx", "off"],
                           capture_output=True, timeout=20, check=False)
        yield Lab(a, b, va, vb, ip_a, ip_b, mac_a, mac_b)
    finally:
        for ns in (a, b):
            subprocess.run([IP, "netns", "del", ns], capture_output=True, timeout=20,
                           check=False)


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 20 s; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class NetDaemon:
    """``edgeguard run`` inside a namespace, watching one interface (monitor mode)."""

    proc: subprocess.Popen[str]
    audit: Path
    socket: Path

    def records(self) -> list[dict[str, Any]]:
        path = self.audit / "audit.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]

    def alerts(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["event"]["kind"] == "alert"]


@contextlib.contextmanager
def daemon_in(net: Lab, tmp: Path, extra_policy: str = "") -> Iterator[NetDaemon]:
    """Start the daemon in namespace B capturing on its veth; wait for READY; stop it
    (and so its capture workers) at the end."""
    policy = tmp / "policy.yaml"
    policy.write_text(f"mode: monitor\nnetwork:\n  enabled: true\n  interfaces: [{net.veth_b}]\n"
                      + extra_policy)
    notify = Notify(tmp / "notify.sock")
    daemon = NetDaemon(net.popen(net.b, edgeguard_argv(
        "run", "--policy", str(policy), "--audit-dir", str(tmp / "audit"),
        "--control-socket", str(tmp / "control.sock"), "--state-dir", str(tmp / "state")),
        env=edgeguard_env({"NOTIFY_SOCKET": str(notify.path)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), tmp / "audit",
        tmp / "control.sock")
    try:
        notify.wait_for("READY=1")
        yield daemon
    finally:
        stop(daemon.proc)
