"""Network namespaces for the Wi-Fi kill-switch tests (prefix egw-), removed afterwards.

    egw-<id>-kiosk                          egw-<id>-far
      wlan0 10.66.0.2/24 fd66::2  <-- veth -->  phy0 10.66.0.1/24 fd66::1  ("physical")
      wg0   10.77.0.2/24 fd77::2  <-- veth -->  vpn0 10.77.0.1/24 fd77::1  (the tunnel)
      default route via 10.66.0.1
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IP = "/usr/sbin/ip"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout)


@dataclass
class Lab:
    kiosk: str
    far: str

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float = 20,
            ) -> subprocess.CompletedProcess[str]:
        return sh(IP, "netns", "exec", ns, *argv, check=check, timeout=timeout)

    def py(self, ns: str, *argv: str, check: bool = True, timeout: float = 30,
           ) -> subprocess.CompletedProcess[str]:
        env_argv = ["env", f"PYTHONPATH={ROOT}", sys.executable]
        return self.run(ns, *env_argv, *argv, check=check, timeout=timeout)

    def popen_py(self, ns: str, *argv: str, stdin: bool = False) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [IP, "netns", "exec", ns, "env", f"PYTHONPATH={ROOT}", sys.executable, *argv],
            stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def ping(self, *args: str) -> bool:
        done = self.run(self.kiosk, "ping", "-c", "1", "-W", "1", *args, check=False)
        return done.returncode == 0

    def send(self, host: str, port: int, *extra: str) -> str:
        out = self.py(self.kiosk, str(HERE / "nettool.py"), "send", host, str(port), *extra)
        return out.stdout.strip()

    def delivered(self, host: str, port: int, *extra: str) -> bool:
        """Send UDP from the kiosk; True when the far side received it."""
        ns = self.far
        recv = self.popen_py(ns, str(HERE / "nettool.py"), "recv", str(port), "1.5")
        try:
            assert recv.stdout is not None
            assert recv.stdout.readline().strip() == "ready"
            self.send(host, port, *extra)
            out, _ = recv.communicate(timeout=10)
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        return int(out.strip().splitlines()[-1]) > 0


def make_lab() -> Iterator[Lab]:
    tag = f"egw-{os.getpid() % 10000}-{int(time.monotonic() * 1000) % 10000}"
    kiosk, far = f"{tag}-k", f"{tag}-f"
    sh(IP, "netns", "add", kiosk)
    sh(IP, "netns", "add", far)
    try:
        for mine, theirs, net, net6 in (("wlan0", "phy0", "10.66.0", "fd66::"),
                                        ("wg0", "vpn0", "10.77.0", "fd77::")):
            sh(IP, "-n", kiosk, "link", "add", mine, "type", "veth", "peer", "name", theirs,
               "netns", far)
            sh(IP, "-n", kiosk, "addr", "add", f"{net}.2/24", "dev", mine)
            sh(IP, "-n", far, "addr", "add", f"{net}.1/24", "dev", theirs)
            sh(IP, "-n", kiosk, "addr", "add", f"{net6}2/64", "dev", mine, "nodad")
            sh(IP, "-n", far, "addr", "add", f"{net6}1/64", "dev", theirs, "nodad")
            sh(IP, "-n", kiosk, "link", "set", mine, "up")
            sh(IP, "-n", far, "link", "set", theirs, "up")
        for ns in (kiosk, far):
            sh(IP, "-n", ns, "link", "set", "lo", "up")
        sh(IP, "-n", kiosk, "route", "add", "default", "via", "10.66.0.1")
        lab = Lab(kiosk, far)
        # IPv6 routes appear once the kernel's link watch reports carrier (up to ~1 s)
        for _ in range(20):
            if lab.ping("-6", "fd66::1") and lab.ping("-6", "fd77::1"):
                break
            time.sleep(0.25)
        yield lab
    finally:
        for ns in (kiosk, far):
            pids = sh(IP, "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            sh(IP, "netns", "del", ns, check=False)
