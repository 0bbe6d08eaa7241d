"""The kiosk component wired as the daemon wires it (decision engine, pipeline, its
actions), over a fake sysfs tree and a socketpair standing in for /dev/rfkill."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kiosk_fakesys import FakeSysfs

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import nest, record_fields
from edgeguard.events import AuditRecord
from edgeguard.kiosk.rfkill import RfkillDevice, RfkillEvent
from edgeguard.kiosk.service import KioskComponent, NoSource
from edgeguard.policy.load import load_policy
from edgeguard.policy.model import Policy


def kiosk_policy(tmp_path: Path, extra: str = "") -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(f"kiosk:\n  sysfs_root: {tmp_path / 'sys'}\n{extra}")
    return load_policy([path], "kiosk", require_safe=False).policy


@dataclass
class Kiosk:
    tmp: Path
    policy: Policy
    boot_id: str = "boot-1"
    fake: FakeSysfs = field(init=False)
    sink: MemorySink = field(default_factory=MemorySink)
    clock: FakeClock = field(default_factory=FakeClock)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    comp: KioskComponent | None = None
    radio_end: socket.socket | None = None
    _ours: socket.socket | None = None

    def __post_init__(self) -> None:
        root = self.tmp / "sys"
        self.fake = FakeSysfs(root) if not root.exists() else _existing(root)

    def start(self, *, rfkill: bool = True) -> KioskComponent:
        engine = DecisionEngine(self.policy, self.clock)
        pipeline = Pipeline(engine, self.sink)
        device = None
        if rfkill:
            self._ours, self.radio_end = socket.socketpair(socket.AF_UNIX,
                                                           socket.SOCK_SEQPACKET)
            self.radio_end.settimeout(2)
            ours = self._ours

            def opener() -> int:
                fd = os.dup(ours.fileno())
                os.set_blocking(fd, False)
                return fd
            device = RfkillDevice("fake-rfkill", opener=opener)
        else:
            def missing() -> int:
                raise FileNotFoundError(2, "No such file or directory")
            device = RfkillDevice("missing", opener=missing)
        self.comp = KioskComponent(source_factory=NoSource, rfkill=device, boot_id=self.boot_id)
        ctx = Context(loop=self.loop, clock=self.clock, audit=self.sink, policy=self.policy,
                      state_dir=self.tmp / "state", submit=pipeline.submit)
        self.comp.start(ctx)
        pipeline.add_actions(self.comp.actions())  # as the daemon does after start()
        self.settle()
        return self.comp

    def settle(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0.01))

    def plug(self, bus_path: str, fixture: str, **kw: Any) -> None:
        self.fake.add_device(bus_path, fixture, **kw)
        assert self.comp is not None
        assert self.comp.usb is not None
        self.comp.usb.on_uevent("add", bus_path, "usb_device")

    def radio_send(self, event: RfkillEvent) -> None:
        assert self.radio_end is not None
        self.radio_end.send(event.pack())
        self.settle()

    def radio_written(self) -> list[RfkillEvent]:
        assert self.radio_end is not None
        out = []
        self.radio_end.setblocking(False)
        try:
            while True:
                out.append(RfkillEvent.unpack(self.radio_end.recv(64)))
        except BlockingIOError:
            pass
        finally:
            self.radio_end.settimeout(2)
        return out

    def records(self, action: str | None = None) -> list[dict[str, Any]]:
        out = []
        for rec in self.sink.records:
            obj = nest(record_fields(rec, rec.timestamp or 1.0, "kiosk-1"))
            orjson.dumps(obj)  # renderable
            if action is None or rec.action == action:
                out.append(obj)
        return out

    def raw(self) -> list[AuditRecord]:
        return list(self.sink.records)

    def close(self) -> None:
        if self.comp is not None:
            self.comp.stop()
        for sock in (self._ours, self.radio_end):
            if sock is not None:
                sock.close()
        self.loop.close()


def _existing(root: Path) -> FakeSysfs:
    fake = FakeSysfs.__new__(FakeSysfs)
    fake.root = root
    fake.devices = root / "bus" / "usb" / "devices"
    return fake
