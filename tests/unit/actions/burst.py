"""A burst of severe findings in enforce mode while a USB stick arrives.

The scenario behind tests/unit/actions/test_action_worker.py, also runnable as
``python -m tests.unit.actions.burst`` to print the figures with the actions run inline
on the event loop (the old way) and on the action worker.

The nftables actions are real (:class:`~edgeguard.actions.nftables.enforcer.Enforcer`,
one fork of a binary per transaction) except that the binary is ``/bin/true``, so the
cost of each transaction is a real fork+exec without touching the kernel's ruleset.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from edgeguard.actions.nftables.actions import nft_actions
from edgeguard.actions.nftables.enforcer import Enforcer
from edgeguard.actions.nftables.runner import Nft
from edgeguard.actions.worker import ActionWorker, InlineRunner
from edgeguard.audit.sink import MemorySink
from edgeguard.clock import SystemClock
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.events import Endpoint, EventKind, Finding, Mode, Outcome, Severity
from edgeguard.media.allow import AllowStore
from edgeguard.media.catalogue import HardwareCatalogue
from edgeguard.media.engine import MediaEngine
from edgeguard.media.replay import SimulatedKernel
from edgeguard.media.source import load_recording
from edgeguard.policy.load import load_policy

ROOT = Path(__file__).resolve().parents[3]
STICK = ROOT / "tests" / "data" / "uevents" / "01-non-trust-add-remove.json"
#: The watchdog-like timer's period in the scenario (seconds).
TICK = 0.02


@dataclass(frozen=True, slots=True)
class BurstResult:
    usb_latency: float  # from the uevent being readable to its record being written
    watchdog_delay: float  # worst lateness of the periodic timer
    burst_on_loop: float  # time the burst's callback held the loop
    blocks_ok: int
    nft_calls: int
    total: float  # until every block record was written


def scenario(tmp: Path, *, findings: int = 1000, worker: bool = True) -> BurstResult:
    return asyncio.run(_scenario(tmp, findings, worker))


async def _scenario(tmp: Path, count: int, use_worker: bool) -> BurstResult:
    loop = asyncio.get_running_loop()
    (tmp / "p.yaml").write_text("mode: enforce\n")
    policy = load_policy([tmp / "p.yaml"], require_safe=False).policy
    clock = SystemClock()
    sink = MemorySink()
    nft = Nft(nft="/bin/true")
    enforcer = Enforcer(nft, policy.network, sink, clock)
    worker = ActionWorker(loop) if use_worker else None
    pipeline = Pipeline(DecisionEngine(policy, clock), sink,
                        dict(nft_actions(enforcer, lambda: policy.network)),
                        runner=worker if worker is not None else InlineRunner())
    if worker is not None:
        worker.start()
    kernel = SimulatedKernel()
    media = MediaEngine(config=policy.media, mode=Mode.ENFORCE, catalogue=HardwareCatalogue(),
                        allows=AllowStore(tmp / "allows.json", clock), block=kernel,
                        audit=sink, clock=clock)
    stick = [p for burst in load_recording(STICK) for p in burst]
    worst = 0.0
    due = time.perf_counter() + TICK
    stop = False

    def watchdog() -> None:
        nonlocal worst, due
        now = time.perf_counter()
        worst = max(worst, now - due)
        due = now + TICK
        if not stop:
            loop.call_later(TICK, watchdog)

    held = 0.0

    def burst() -> None:
        nonlocal held
        start = time.perf_counter()
        for i in range(count):
            pipeline.submit(Finding(
                kind="scan", subtype="syn", message="probed", identifier=f"burst-{i}",
                severity=Severity.SEVERE, source=Endpoint(ip=f"10.66.{i // 250}.{i % 250 + 1}"),
                destinations=(Endpoint(ip="10.77.2.2"),), transport="tcp"))
        held = time.perf_counter() - start

    usb_done = loop.create_future()

    def usb(arrived: float) -> None:
        for props in stick:
            kernel.uevent(props)
            media.handle_properties(props)
            if props.get("ACTION") == "add":
                break
        usb_done.set_result(time.perf_counter() - arrived)

    begin = time.perf_counter()
    loop.call_later(TICK, watchdog)
    await asyncio.sleep(TICK * 2)
    loop.call_soon(burst)
    loop.call_soon(usb, time.perf_counter())
    usb_latency = await usb_done

    def blocks() -> list[Outcome]:
        return [r.outcome for r in sink.records
                if r.action == "block" and r.kind is EventKind.EVENT]

    for _ in range(6000):
        if len(blocks()) >= count:
            break
        await asyncio.sleep(0.005)
    total = time.perf_counter() - begin
    await asyncio.sleep(TICK * 3)  # let the timer run once more after the last record
    stop = True
    if worker is not None:
        worker.stop()
    return BurstResult(usb_latency, worst, held, blocks().count(Outcome.SUCCESS), nft.calls,
                       total)


def main() -> None:
    import tempfile  # noqa: PLC0415

    for label, use in (("inline (old)", False), ("worker", True)):
        with tempfile.TemporaryDirectory() as tmp:
            r = scenario(Path(tmp), worker=use)
        print(f"{label:<13} USB decision {r.usb_latency * 1000:8.1f} ms  watchdog delay "
              f"{r.watchdog_delay * 1000:8.1f} ms  loop held {r.burst_on_loop * 1000:8.1f} ms  "
              f"blocks ok {r.blocks_ok}  nft runs {r.nft_calls}  all done {r.total:.2f} s")


if __name__ == "__main__":
    main()
