"""Run the Wi-Fi component on a recording with the *real* kill switch (inside a netns).

    replay_in_ns.py RECORDING POLICY

After coldplug and after each recorded event it prints one JSON line (the step and the
kill switch's state) and waits for a line on stdin, so a test can probe the network
between events. Test-only: the daemon uses the live backend.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import SystemClock
from edgeguard.daemon.component import Context
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.policy.load import load_policy
from edgeguard.wifi.backend import ReplayBackend
from edgeguard.wifi.service import WifiComponent


async def main(recording: Path, policy_file: Path) -> int:
    policy = load_policy([policy_file]).policy
    clock, sink = SystemClock(), MemorySink()
    pipeline = Pipeline(DecisionEngine(policy, clock), sink)
    backend = ReplayBackend(recording)
    component = WifiComponent(policy, backend=backend, watch_links=False)
    ctx = Context(loop=asyncio.get_running_loop(), clock=clock, audit=sink, policy=policy,
                  state_dir=recording.parent, submit=pipeline.submit)
    component.start(ctx)
    pipeline.add_actions(component.actions())
    await component.ready.wait()
    step = 0

    async def report() -> None:
        nonlocal step
        await component.drain()
        state = component.killswitch.state()
        print(json.dumps({"step": step, "engaged": state.engaged,
                          "actions": [r.action for r in sink.records]}), flush=True)
        step += 1
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    await report()
    await backend.play(report)
    component.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]))))
