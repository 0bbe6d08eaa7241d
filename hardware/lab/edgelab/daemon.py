"""The working tree's edgeguard daemon, started in the guest the way an init system would
(no systemd there): ``python3 -m edgeguard run`` with the tree on PYTHONPATH."""

# ruff: noqa: S108 - /tmp paths are inside the throwaway guest
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from typing import Any

from .vm import SRC, GuestError, LabVM, env_for_edgeguard

__all__ = ["GuestDaemon", "ecs_field", "install_udev_rules"]

BASE = "/var/lib/edgeguard"
SOCKET = "/run/edgeguard/control.sock"


def ecs_field(rec: dict[str, Any], dotted: str) -> Any:
    """An ECS field of an audit record, whether the writer nests or flattens names."""
    if dotted in rec:
        return rec[dotted]
    cur: Any = rec
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def install_udev_rules(vm: LabVM, names: list[str]) -> None:
    """Install the tree's shipped rules (``rules/NAME``) as an administrator would."""
    vm.run("/bin/mkdir", "-p", "/etc/udev/rules.d")
    for name in names:
        vm.run("/bin/cp", f"{SRC}/rules/{name}", f"/etc/udev/rules.d/{name}")
    vm.run("/usr/bin/udevadm", "control", "--reload")


@dataclass
class GuestDaemon:
    vm: LabVM
    policy_text: str
    profile: str | None = None
    pid: int | None = None

    @property
    def audit_log(self) -> str:
        return f"{BASE}/audit/audit.jsonl"

    def edgeguard(self, *args: str, timeout: float = 120, check: bool = False) -> Any:
        return self.vm.run("/usr/bin/python3", "-m", "edgeguard", *args, timeout=timeout,
                           env=env_for_edgeguard(), cwd="/", check=check)

    def start(self, timeout: float = 180) -> None:
        self.vm.run("/bin/mkdir", "-p", f"{BASE}/audit", f"{BASE}/state", "/run/edgeguard",
                    "/etc/edgeguard")
        self.vm.put("/etc/edgeguard/lab-policy.yaml", self.policy_text)
        argv = ["/usr/bin/python3", "-m", "edgeguard", "run",
                "--policy", "/etc/edgeguard/lab-policy.yaml", "--audit-dir", f"{BASE}/audit",
                "--control-socket", SOCKET, "--state-dir", f"{BASE}/state"]
        if self.profile:
            argv += ["--profile", self.profile]
        self.pid = self.vm.spawn(*argv, log="/tmp/edgeguard.log", env=env_for_edgeguard(),
                                 cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.vm.wait(self.pid) is not None:
                raise GuestError("edgeguard exited at start:\n" + self.log())
            if self.edgeguard("status", "--json", "--socket", SOCKET).rc == 0:
                return
            time.sleep(0.5)
        raise TimeoutError("edgeguard did not answer status:\n" + self.log())

    def status(self) -> dict[str, Any]:
        out = self.edgeguard("status", "--json", "--socket", SOCKET, check=True)
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def log(self) -> str:
        return self.vm.run("/bin/cat", "/tmp/edgeguard.log", check=False).stdout[-4000:]

    def records(self) -> list[dict[str, Any]]:
        raw = self.vm.run("/bin/cat", self.audit_log, check=False).stdout
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def wait_record(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.records():
                if predicate(rec):
                    return rec
            time.sleep(0.5)
        seen = [(ecs_field(r, "event.action"), ecs_field(r, "volume.device_name")
                 or ecs_field(r, "edgeguard.wifi.bssid")) for r in self.records()]
        raise TimeoutError(f"no matching audit record in {timeout} s; records: {seen}\n"
                           + self.log())

    def stop(self) -> int | None:
        if self.pid is None:
            return None
        rc = self.vm.kill(self.pid, signal.SIGTERM, timeout=30)
        self.pid = None
        return rc
