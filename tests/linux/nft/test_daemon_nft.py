"""The real daemon in the gateway namespace: it builds the table, serves ``net blocks``
and ``net unblock`` over its control socket (audited in its hash-chained log), keeps
the table at SIGTERM per policy and carries kept blocks into the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nftlab import IP, NFT, Lab

from tests.support.schema import validate_lines

pytestmark = pytest.mark.linux
ROOT = Path(__file__).resolve().parents[3]

POLICY = """\
mode: enforce
network:
  enabled: true
  block_duration: 60s
  enforcement:
    keep_table_on_stop: true
    expiry_poll_interval: 500ms
    set_size: 1024
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


class Daemon:
    def __init__(self, lab: Lab, tmp: Path):
        self.sock = tmp / "control.sock"
        self.audit = tmp / "audit"
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        self.proc = subprocess.Popen(
            [IP, "netns", "exec", lab.gateway, sys.executable, "-m", "edgeguard", "run",
             "--policy", str(policy), "--audit-dir", str(self.audit), "--control-socket",
             str(self.sock), "--state-dir", str(tmp / "state")],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not self.sock.is_socket():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.1)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgeguard", *args, "--socket",
                               str(self.sock)], env=env(), capture_output=True, text=True,
                              timeout=60, check=False)

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in (self.audit / "audit.jsonl").read_text().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)


def actions(records: list[dict[str, object]]) -> list[str]:
    return [r["event"]["action"] for r in records]  # type: ignore[index]


def test_daemon_serves_blocks_and_unblock_and_keeps_the_table(lab: Lab, tmp_path: Path) -> None:
    daemon = Daemon(lab, tmp_path)
    try:
        assert lab.our_table() is not None
        # Two blocks as the daemon's actions write them (finding tag in the comment).
        for ip, fid in ((lab.scan_ip, "scan:a"), (lab.scan_ip2, "scan:b")):
            lab.ns(lab.gateway, NFT, "add", "element", "inet", "edgeguard", "block4",
                   f'{{ {ip} timeout 60s comment "port-scan|scan/syn|{fid}" }}')
        listed = daemon.cli("net", "blocks", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = validate_lines(listed.stdout)  # the --json contract (docs/schema)
        assert {r["event"]["action"] for r in rows} == {"network-block-state"}
        assert {(r["source"]["ip"], r["edgeguard"]["finding"]["id"]) for r in rows} == {
            (lab.scan_ip, "scan:a"), (lab.scan_ip2, "scan:b")}
        assert all(r["rule"]["id"] == "port-scan" and r["event"]["end"] for r in rows)

        time.sleep(1.2)  # a poll adopts the hand-added elements
        gone = daemon.cli("net", "unblock", lab.scan_ip2)
        assert gone.returncode == 0, gone.stderr
        assert "removed 1 block(s)" in gone.stdout
        nothing = daemon.cli("net", "unblock", "10.200.0.9", "--json")
        assert nothing.returncode == 1  # nothing to remove
        assert validate_lines(nothing.stdout)[0]["edgeguard"]["unblocked"] == 0
        assert daemon.cli("net", "unblock", "not-an-address").returncode == 2
        (status,) = validate_lines(daemon.cli("status", "--json").stdout)
        assert status["edgeguard"]["sources"]["net-enforce"]["counters"]["nft_unblocked"] == 1
    finally:
        daemon.stop()
    records = daemon.records()
    (unblock,) = [r for r in records if r["event"]["action"] == "network-unblock"]  # type: ignore[index]
    assert unblock["event"]["type"] == ["allowed", "end"]  # type: ignore[index]
    assert unblock["edgeguard"]["finding"]["id"] == "scan:b"  # type: ignore[index]
    assert unblock["source"]["ip"] == lab.scan_ip2  # type: ignore[index]
    assert "network-enforcement-stopped" in actions(records)

    # keep_table_on_stop: the remaining block survives the stop ...
    lab.count_at_target(lab.scan_ip)
    lab.syns(10)
    assert lab.received(lab.scan_ip) == 0
    # ... and the next run carries it over.
    second = Daemon(lab, tmp_path)
    try:
        rows = validate_lines(second.cli("net", "blocks", "--json").stdout)
        assert [r["source"]["ip"] for r in rows] == [lab.scan_ip]
    finally:
        second.stop()
    started = [r for r in second.records()
               if r["event"]["action"] == "network-enforcement-started"]  # type: ignore[index]
    assert started[-1]["edgeguard"]["block"]["restored"] == 1  # type: ignore[index]


def test_manual_block_drops_real_packets_and_is_audited(lab: Lab, tmp_path: Path) -> None:
    """Issue 21: ``net block ADDR --for --reason`` through the real daemon: the kernel
    drops the host's packets, the record says who and why; ``net unblock`` lifts it."""
    daemon = Daemon(lab, tmp_path)
    try:
        done = daemon.cli("net", "block", lab.scan_ip, "--for", "1h", "--reason",
                          "false alarm drill", "--json")
        assert done.returncode == 0, done.stderr
        (row,) = validate_lines(done.stdout)  # the --json contract (docs/schema)
        assert row["rule"]["id"] == "manual-block"
        assert row["edgeguard"]["block"]["timeout"] == 3600
        listing = lab.ns(lab.gateway, NFT, "-j", "list", "set", "inet", "edgeguard",
                         "block4").stdout
        assert lab.scan_ip in listing
        assert "manual-block|manual/block|false alarm drill" in listing
        lab.count_at_target(lab.scan_ip)
        lab.syns(10)
        assert lab.received(lab.scan_ip) == 0  # dropped
        refused = daemon.cli("net", "block", "not-an-address", "--for", "1h", "--reason", "x")
        assert refused.returncode == 2
        assert daemon.cli("net", "unblock", lab.scan_ip).returncode == 0
        lab.count_at_target(lab.scan_ip)
        lab.syns(10)
        assert lab.received(lab.scan_ip) > 0  # flows again
    finally:
        daemon.stop()
    (manual,) = [r for r in daemon.records() if r["event"]["action"] == "block"]  # type: ignore[index]
    assert manual["event"]["outcome"] == "success"  # type: ignore[index]
    assert manual["event"]["reason"] == "false alarm drill"  # type: ignore[index]
    assert manual["user"]["name"].startswith("uid=0 ")  # type: ignore[index]
    commands = [r["edgeguard"]["control"]["command"] for r in daemon.records()  # type: ignore[index]
                if r["event"]["action"] == "control-command"]  # type: ignore[index]
    assert commands == ["net.block", "net.unblock"]
