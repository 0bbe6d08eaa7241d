"""A real BitTorrent swarm between the lab's namespaces: opentracker and an aria2
seeder on the target side, an aria2 leecher on the scanner side (through the gateway).

DHT, LPD and PEX are off so the only peer is the seeder reached through the gateway;
the leecher's download is rate-capped so a transfer lasts long enough to block it
half-way. Progress is measured on the leecher's side with a counter of the TCP bytes
arriving from the seeder (what crossed the gateway), not with aria2's own reporting.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from nftlab import IP, NFT, Lab

OPENTRACKER = "/usr/bin/opentracker"
ARIA2C = "/usr/bin/aria2c"
TR_CREATE = "/usr/bin/transmission-create"
TR_SHOW = "/usr/bin/transmission-show"
TOOLS = (OPENTRACKER, ARIA2C, TR_CREATE, TR_SHOW)

_QUIET = ["--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
          "--enable-peer-exchange=false", "--console-log-level=warn", "--summary-interval=0",
          "--file-allocation=none", "--bt-tracker-interval=2", "--bt-max-peers=5"]


class Swarm:
    def __init__(self, lab: Lab, tmp: Path, size: int, rate: str):
        self.lab, self.tmp, self.rate = lab, tmp, rate
        self.procs: list[subprocess.Popen[bytes]] = []
        tmp.mkdir(exist_ok=True)
        (tmp / "seed").mkdir()
        (tmp / "leech").mkdir()
        payload = tmp / "seed" / "payload.bin"
        payload.write_bytes(os.urandom(size))
        self.digest = hashlib.sha256(payload.read_bytes()).hexdigest()
        self.torrent = tmp / "payload.torrent"
        subprocess.run([TR_CREATE, "-o", str(self.torrent), "-s", "64", "-t",
                        f"http://{lab.target_ip}:6969/announce", str(payload)],
                       check=True, capture_output=True, timeout=60)
        show = subprocess.run([TR_SHOW, str(self.torrent)], check=True, capture_output=True,
                              text=True, timeout=60).stdout
        self.info_hash = next(line.split(":", 1)[1].strip() for line in show.splitlines()
                              if line.strip().startswith("Hash"))
        # Debian's opentracker serves only whitelisted torrents.
        # It chroots into ``tmp`` and runs as nobody, who must be able to read the list.
        (tmp / "whitelist").write_text(self.info_hash + "\n")
        tmp.chmod(0o755)
        (tmp / "whitelist").chmod(0o644)
        # The leecher counts what arrives from the seeder's side of the gateway.
        lab.ns(lab.scanner, NFT, "-f", "-", input=(
            "table inet egnbt { counter fromseed { }\n"
            "  chain input { type filter hook input priority 0; policy accept;\n"
            f"    ip saddr {lab.target_ip} tcp sport != 6969 counter name fromseed\n  }}\n}}\n"))

    def _bg(self, ns: str, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.tmp / log).open("wb") as out:
            proc = subprocess.Popen([IP, "netns", "exec", ns, *argv], stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self) -> subprocess.Popen[bytes]:
        lab = self.lab
        self._bg(lab.target, [OPENTRACKER, "-i", lab.target_ip, "-p", "6969", "-P", "6969",
                              "-d", str(self.tmp), "-u", "nobody", "-w", "whitelist"],
                 "tracker.log")
        self._bg(lab.target, [ARIA2C, "--dir", str(self.tmp / "seed"), "--check-integrity=true",
                              "--seed-ratio=0.0", "--listen-port=6881", *_QUIET,
                              f"--bt-external-ip={lab.target_ip}", str(self.torrent)],
                 "seed.log")
        return self._bg(lab.scanner, [ARIA2C, "--dir", str(self.tmp / "leech"),
                                      "--seed-time=0", f"--max-download-limit={self.rate}",
                                      "--listen-port=6882", *_QUIET,
                                      f"--bt-external-ip={lab.scan_ip}", str(self.torrent)],
                        "leech.log")

    def received(self) -> int:
        out = self.lab.ns(self.lab.scanner, NFT, "-j", "list", "counter", "inet", "egnbt",
                          "fromseed").stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["bytes"])
        raise AssertionError("counter missing")

    def complete(self) -> bool:
        got = self.tmp / "leech" / "payload.bin"
        return got.exists() and hashlib.sha256(got.read_bytes()).hexdigest() == self.digest

    def leech_log(self) -> str:
        return (self.tmp / "leech.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
