"""Three throwaway namespaces: scanner -> gateway (edgeguard's nft, forwarding) -> target.

Everything is created inside namespaces named ``egn-<id>-*`` and removed afterwards;
nothing touches the host's root namespace. The target counts what reaches it with
named counters in its own test table, which is how the tests measure that a block
drops packets (the far side stops counting) instead of trusting our own rule counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

IP = "/usr/sbin/ip"
NFT = "/usr/sbin/nft"
HPING3 = "/usr/sbin/hping3"
PING = "/usr/bin/ping"
PYTHON3 = "/usr/bin/python3"
SS = "/usr/bin/ss"


def sh(argv: Sequence[str], *, check: bool = True, timeout: float = 30,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout, input=input)


@dataclass
class Lab:
    prefix: str
    scanner: str = ""
    gateway: str = ""
    target: str = ""
    namespaces: list[str] = field(default_factory=list)

    # addresses
    scan_ip = "10.77.1.2"
    scan_ip2 = "10.77.1.3"  # a second host on the scanner's LAN (allowlist tests)
    gw_lan = "10.77.1.1"
    gw_wan = "10.77.2.1"
    target_ip = "10.77.2.2"
    scan_ip6 = "fd77:1::2"
    target_ip6 = "fd77:2::2"

    def ns(self, name: str, *argv: str, check: bool = True, timeout: float = 30,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
        return sh([IP, "netns", "exec", name, *argv], check=check, timeout=timeout, input=input)

    def nft_prefix(self) -> list[str]:
        return [IP, "netns", "exec", self.gateway]

    def mac(self, ns: str, dev: str) -> str:
        out = self.ns(ns, IP, "-j", "link", "show", dev).stdout
        return str(json.loads(out)[0]["address"])

    # -- traffic -----------------------------------------------------------------------
    def syns(self, count: int = 20, dport: int = 80, source: str | None = None,
             sport: int | None = None, udp: bool = False, src_ns: str | None = None,
             dst: str | None = None, rand_source: bool = False) -> None:
        """Send ``count`` bounded probes with hping3 (2 ms apart) toward the target."""
        argv = [HPING3, "-q", "-c", str(count), "-i", "u2000", "-p", str(dport)]
        argv += ["--udp"] if udp else ["-S"]
        if source:
            argv += ["-a", source]
        if rand_source:
            argv += ["--rand-source"]
        if sport is not None:
            argv += ["-s", str(sport), "-k"]
        argv.append(dst or self.target_ip)
        self.ns(src_ns or self.scanner, *argv, check=False, timeout=30)

    def serve(self, *ports: int) -> list[subprocess.Popen[bytes]]:
        """TCP services on the target (Python's http.server); the caller kills them."""
        procs = [subprocess.Popen([IP, "netns", "exec", self.target, PYTHON3, "-m",
                                   "http.server", str(port), "--bind", self.target_ip],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for port in ports]
        deadline = time.monotonic() + 20
        while not all(f":{p} " in self.ns(self.target, SS, "-ltnH").stdout for p in ports):
            assert time.monotonic() < deadline, "services did not start"
            time.sleep(0.1)
        return procs

    def connects(self, port: int, timeout: float = 2.0) -> bool:
        """Whether a TCP connection from the scanner to the target's ``port`` succeeds."""
        code = (f"import socket; socket.create_connection(({self.target_ip!r}, {port}), "
                f"timeout={timeout}).close()")
        return self.ns(self.scanner, PYTHON3, "-c", code, check=False,
                       timeout=timeout + 10).returncode == 0

    def ping6(self, count: int = 5) -> None:
        self.ns(self.scanner, PING, "-6", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "1",
                self.target_ip6, check=False, timeout=30)

    # -- far-side counters -------------------------------------------------------------
    def count_at_target(self, *sources: str) -> None:
        """Named counters in the target namespace, one per source address (or per raw
        match expression, e.g. ``tcp dport 80``)."""
        lines = ["table inet egntest {"]
        lines += [f"  counter c{i} {{ }}" for i in range(len(sources))]
        lines.append("  chain input { type filter hook input priority 0; policy accept;")
        for i, src in enumerate(sources):
            match = src if " " in src else f"{'ip6' if ':' in src else 'ip'} saddr {src}"
            lines.append(f"    {match} counter name c{i}")
        lines += ["  }", "}"]
        self.ns(self.target, NFT, "-f", "-", input="\n".join(lines) + "\n")
        self._counted = list(sources)

    def received(self, source: str) -> int:
        index = self._counted.index(source)
        out = self.ns(self.target, NFT, "-j", "list", "counter", "inet", "egntest",
                      f"c{index}").stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise AssertionError("counter not found")

    def gateway_ruleset(self) -> str:
        return self.ns(self.gateway, NFT, "list", "ruleset").stdout

    def our_table(self) -> list[dict[str, object]] | None:
        proc = self.ns(self.gateway, NFT, "-j", "list", "table", "inet", "edgeguard",
                       check=False)
        if proc.returncode != 0:
            return None
        return list(json.loads(proc.stdout)["nftables"])

    # -- lifecycle ---------------------------------------------------------------------
    def up(self) -> Lab:
        self.scanner, self.gateway, self.target = (f"{self.prefix}-{n}" for n in "sgt")
        for name in (self.scanner, self.gateway, self.target):
            sh([IP, "netns", "add", name])
            self.namespaces.append(name)
            self.ns(name, IP, "link", "set", "lo", "up")
            # No duplicate address detection: link-local addresses usable at once.
            self.ns(name, "/usr/sbin/sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0")
        s, g, t = self.scanner, self.gateway, self.target
        sh([IP, "-n", s, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0",
            "netns", g])
        sh([IP, "-n", t, "link", "add", "eth0", "type", "veth", "peer", "name", "wan0",
            "netns", g])
        for ns_, dev, addrs in ((s, "eth0", [f"{self.scan_ip}/24", f"{self.scan_ip2}/24",
                                             f"{self.scan_ip6}/64"]),
                                (g, "lan0", [f"{self.gw_lan}/24", "fd77:1::1/64"]),
                                (g, "wan0", [f"{self.gw_wan}/24", "fd77:2::1/64"]),
                                (t, "eth0", [f"{self.target_ip}/24", f"{self.target_ip6}/64"])):
            for addr in addrs:
                sh([IP, "-n", ns_, "addr", "add", addr, "dev", dev, "nodad"])
            sh([IP, "-n", ns_, "link", "set", dev, "up"])
        sh([IP, "-n", s, "route", "add", "default", "via", self.gw_lan])
        sh([IP, "-n", t, "route", "add", "default", "via", self.gw_wan])
        sh([IP, "-n", s, "-6", "route", "add", "default", "via", "fd77:1::1"])
        sh([IP, "-n", t, "-6", "route", "add", "default", "via", "fd77:2::1"])
        self.ns(g, "/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1")
        # hping3 uses raw sockets; keep the target's kernel from answering RSTs to an
        # unknown peer changing anything: answers are not what we count.
        self.wait_reachable()
        return self

    def wait_reachable(self) -> None:
        deadline = time.monotonic() + 10
        for target in (self.target_ip, self.target_ip6):
            while self.ns(self.scanner, PING, "-c", "1", "-W", "1", target,
                          check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise AssertionError(f"lab: {target} not reachable")

    def down(self) -> None:
        for name in reversed(self.namespaces):
            sh([IP, "netns", "del", name], check=False)
        self.namespaces.clear()


def new_lab() -> Lab:
    return Lab(prefix=f"egn-{uuid.uuid4().hex[:6]}").up()


def require_tools() -> str | None:
    for tool in (IP, NFT, HPING3, PING):
        if not os.access(tool, os.X_OK):
            return f"{tool} missing"
    return None
