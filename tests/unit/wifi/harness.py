"""Run the Wi-Fi component on a recording, with a real pipeline and a fake kill switch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import ActionKind, ActionResult, AuditRecord
from edgeguard.policy.load import load_policy
from edgeguard.wifi.backend import ReplayBackend
from edgeguard.wifi.config import VpnConfig
from edgeguard.wifi.killswitch import KillSwitch, KillSwitchState
from edgeguard.wifi.service import WifiComponent

from .vectors import DATA

RECORDINGS = DATA / "nl80211"

POLICY = """
mode: {mode}
wifi:
  enabled: true
  minimum_security: wpa2-psk
  backoff: 5m
  wpa_supplicant_dir: {wpa_dir}
  approved_networks:
    - ssid: trust-staff
      bssids: ["02:00:00:00:03:03"]
      security: wpa2-enterprise
      trusted: true
  vpn:
    interfaces: [wg0]
    endpoints: ["198.51.100.7:51820"]
"""


class FakeKillSwitch(KillSwitch):
    """Remembers engage/lift calls instead of running nft."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.engaged = False

    def engage(self, cfg: VpnConfig) -> ActionResult:
        self.calls.append("engage")
        changed, self.engaged = not self.engaged, True
        return ActionResult(ActionKind.BLOCK, ok=True, changed=changed)

    def lift(self) -> ActionResult:
        self.calls.append("lift")
        changed, self.engaged = self.engaged, False
        return ActionResult(ActionKind.BLOCK, ok=True, changed=changed)

    def state(self) -> KillSwitchState:
        return KillSwitchState(self.engaged)


@dataclass
class Run:
    component: WifiComponent
    backend: ReplayBackend
    sink: MemorySink
    killswitch: FakeKillSwitch
    clock: FakeClock
    pipeline: Pipeline
    delivered: int = 0
    records: list[AuditRecord] = field(default_factory=list)

    def actions(self, name: str) -> list[AuditRecord]:
        return [r for r in self.sink.records if r.action == name]

    def alerts(self) -> list[AuditRecord]:
        return [r for r in self.sink.records if r.kind.value == "alert"]


def replay(recording: str | Path, tmp_path: Path, mode: str = "enforce",
           after_event: Callable[[Run, int], None] | None = None) -> Run:
    path = recording if isinstance(recording, Path) else RECORDINGS / f"{recording}.jsonl"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY.format(mode=mode, wpa_dir=tmp_path / "wpa"))
    policy = load_policy([policy_file]).policy
    clock = FakeClock()
    sink = MemorySink()
    pipeline = Pipeline(DecisionEngine(policy, clock), sink)
    backend = ReplayBackend(path)
    killswitch = FakeKillSwitch()
    component = WifiComponent(policy, backend=backend, killswitch=killswitch, watch_links=False)
    run = Run(component, backend, sink, killswitch, clock, pipeline)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ctx = Context(loop=loop, clock=clock, audit=sink, policy=policy, state_dir=tmp_path,
                      submit=pipeline.submit)
        component.start(ctx)
        pipeline.add_actions(component.actions())
        await asyncio.wait_for(component.ready.wait(), 5)
        step = 0

        async def settle() -> None:
            nonlocal step
            await component.drain()
            step += 1
            if after_event is not None:
                after_event(run, step)

        run.delivered = await backend.play(settle)
        await component.drain()
        component.stop()

    asyncio.run(main())
    return run
