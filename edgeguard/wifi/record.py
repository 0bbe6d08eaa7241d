"""Record real nl80211 traffic for the replay backend (the VM lab runs this).

    python -m edgeguard.wifi.record OUT.jsonl --seconds 30

Runs the Wi-Fi component itself in monitor mode on the live backend with recording on,
so the recording holds the events *and* the dumps in the order the component asks for
them, which is what the replay backend needs. The kill switch is not touched (the
policy used here does not require the VPN) and nothing is disconnected.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import SystemClock
from edgeguard.daemon.component import Context
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import Mode
from edgeguard.policy.model import Policy
from edgeguard.wifi.backend import LiveBackend
from edgeguard.wifi.config import VpnConfig, WifiConfig
from edgeguard.wifi.service import WifiComponent

__all__ = ["main", "record"]


async def record(out: Path, seconds: float, interfaces: tuple[str, ...] = ()) -> MemorySink:
    policy = Policy(mode=Mode.MONITOR, wifi=WifiConfig(
        enabled=True, interfaces=interfaces, vpn=VpnConfig(required=False)))
    clock, sink = SystemClock(), MemorySink()
    pipeline = Pipeline(DecisionEngine(policy, clock), sink)
    component = WifiComponent(policy, backend=LiveBackend(record=out), watch_links=False)
    ctx = Context(loop=asyncio.get_running_loop(), clock=clock, audit=sink, policy=policy,
                  state_dir=out.parent, submit=pipeline.submit)
    component.start(ctx)
    try:
        await asyncio.wait_for(component.ready.wait(), 10)
        if component.watcher_error is None:
            await asyncio.sleep(seconds)
        await component.drain()
    finally:
        component.stop()
    if component.watcher_error:
        raise RuntimeError(component.watcher_error)
    return sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeguard.wifi.record",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("out", type=Path, help="JSON-lines file to append to")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to listen")
    parser.add_argument("--interface", action="append", default=[], help="only this one")
    args = parser.parse_args(argv)
    try:
        sink = asyncio.run(record(args.out, args.seconds, tuple(args.interface)))
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"record: {exc}", file=sys.stderr)
        return 1
    for rec in sink.records:
        print(f"{rec.action}: {rec.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
