"""Build a media engine against the simulated kernel, as the unit tests and fuzzers need."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.ecs import record_fields
from edgeguard.events import Mode
from edgeguard.media.allow import AllowStore
from edgeguard.media.catalogue import HardwareCatalogue, shipped_catalogue_path
from edgeguard.media.config import MediaConfig
from edgeguard.media.engine import MediaEngine
from edgeguard.media.replay import SimulatedKernel
from edgeguard.policy.load import load_policy
from edgeguard.policy.model import Policy

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "tests" / "data" / "media" / "policy.yaml"
UEVENTS = ROOT / "tests" / "data" / "uevents"


def media_policy(**media: object) -> Policy:
    policy = load_policy([POLICY]).policy
    if media:
        policy = dataclasses.replace(policy, media=dataclasses.replace(policy.media, **media))
    return policy


@dataclasses.dataclass
class Harness:
    engine: MediaEngine
    kernel: SimulatedKernel
    sink: MemorySink
    clock: FakeClock

    def fields(self) -> list[dict[str, object]]:
        return [dict(record_fields(r, r.timestamp or 0.0, "test")) for r in self.sink.records]

    def actions(self) -> list[list[str]]:
        """[event.action, device, outcome] per record, in order."""
        return [[str(f["event.action"]), str(f.get("volume.device_name", "")),
                 str(f["event.outcome"])] for f in self.fields()]


def harness(tmp_path: Path, config: MediaConfig | None = None, mode: Mode = Mode.ENFORCE,
            clock: FakeClock | None = None) -> Harness:
    clock = clock or FakeClock()
    kernel = SimulatedKernel()
    sink = MemorySink()
    engine = MediaEngine(
        config=config or media_policy().media, mode=mode,
        catalogue=HardwareCatalogue.load(shipped_catalogue_path()),
        allows=AllowStore(tmp_path / "allows.json", clock), block=kernel, audit=sink,
        clock=clock)
    return Harness(engine, kernel, sink, clock)
