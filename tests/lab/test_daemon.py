"""The working tree's daemon runs in the guest as an init system without systemd would
start it: status over the control socket, a verifiable audit chain, clean stop."""

from __future__ import annotations

import pytest
from edgelab.daemon import GuestDaemon, ecs_field
from edgelab.vm import LabVM, env_for_edgeguard

pytestmark = pytest.mark.lab

VERIFY = """
import sys
from pathlib import Path
from edgeguard.audit.verify import verify_paths
r = verify_paths([Path(sys.argv[1])])
print(r.records, r.problem)
sys.exit(0 if r.ok else 1)
"""


def test_daemon_from_the_tree_runs_in_the_guest(lab: LabVM) -> None:
    daemon = GuestDaemon(lab, "mode: monitor\n")
    daemon.start()
    status = daemon.status()  # `edgeguard status --json`: one ECS line
    assert ecs_field(status, "event.action") == "daemon-status"
    assert ecs_field(status, "process.pid") > 1
    assert ecs_field(status, "edgeguard.mode") == "monitor"
    started = daemon.wait_record(lambda r: ecs_field(r, "event.action") == "edgeguard-started")
    assert ecs_field(started, "process.pid") == ecs_field(status, "process.pid")
    assert daemon.stop() == 0
    actions = [ecs_field(r, "event.action") for r in daemon.records()]
    # the stop record, then the shutdown checkpoint that seals the log with it
    assert actions[-2:] == ["edgeguard-stopped", "audit-checkpoint"]
    out = lab.run("/usr/bin/python3", "-c", VERIFY, "/var/lib/edgeguard/audit",
                  env=env_for_edgeguard(), cwd="/")
    assert int(out.stdout.split()[0]) == len(actions)
