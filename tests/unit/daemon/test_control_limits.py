"""The control socket cannot be starved and a flood of refusals is a few records (#16 §2).

Privileges are declared where each command is registered (#17): read-only commands are
open to the admin group and never audited as changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeguard.actions.nftables.service import EnforcementComponent
from edgeguard.audit.service import AuditService
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Command, Peer, Privilege, changing, read_only
from edgeguard.daemon.control import ControlServer, Request, request
from edgeguard.daemon.control_limits import ConnectionGate, Refusal, RefusalSummary, RefusalTally
from edgeguard.kiosk.service import KioskComponent
from edgeguard.media.service import MediaComponent
from edgeguard.net.service import NetworkComponent
from edgeguard.policy.control import ControlConfig
from edgeguard.policy.load import load_policy
from edgeguard.policy.model import Policy
from edgeguard.wifi.service import WifiComponent

ADMIN = 4242
STAFF = Peer(pid=1, uid=1000, gid=1000, groups=frozenset({ADMIN}))
OUTSIDER = Peer(pid=2, uid=1001, gid=1001)
ROOT = Peer(pid=3, uid=0, gid=0)


async def _echo(peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"uid": peer.uid}


def _commands() -> dict[str, Command]:
    return {"status": read_only(_echo), "reload": changing(_echo)}


# -- admission -----------------------------------------------------------------------------
def test_gate_caps_per_uid_and_keeps_a_reserve_for_root() -> None:
    gate = ConnectionGate(ControlConfig(max_connections=10, max_per_uid=3, root_reserve=4))
    assert [gate.admit(1000) for _ in range(3)] == [None] * 3
    assert "from uid 1000" in (gate.admit(1000) or "")
    assert [gate.admit(1001) for _ in range(3)] == [None] * 3
    # 6 non-root slots in use = max_connections - root_reserve: no other uid gets one
    assert "non-root" in (gate.admit(1002) or "")
    assert [gate.admit(0) for _ in range(4)] == [None] * 4
    assert gate.admit(0) is not None  # the global cap holds for root too
    gate.release(1000)
    assert gate.held_by(1000) == 2
    assert gate.admit(1002) is None


def test_reserve_must_leave_room_for_others() -> None:
    with pytest.raises(ValueError, match="root_reserve"):
        ControlConfig(max_connections=4, root_reserve=4)


def test_limits_come_from_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("daemon:\n  control:\n    max_per_uid: 3\n    idle_timeout: 500ms\n"
                    "    max_request: 4KiB\n    audit_window: 10s\n")
    control = load_policy([path]).policy.daemon.control
    assert (control.max_per_uid, control.idle_timeout, control.max_request,
            control.audit_window) == (3, 0.5, 4096, 10.0)


# -- refusals are tallied, not written one by one -------------------------------------------
def test_tally_writes_one_summary_per_uid_and_window() -> None:
    clock = FakeClock()
    tally = RefusalTally(clock, window=60)
    firsts = [tally.add(1000, Refusal.PRIVILEGE, "reload", individually=True)
              for _ in range(6805)]
    assert firsts.count(True) == 1
    assert firsts[0]
    for _ in range(500):
        tally.add(1000, Refusal.CONNECTIONS)
    tally.add(1001, Refusal.BAD_REQUEST)
    assert tally.flush() == []  # the window has not passed
    clock.advance(60)
    summaries = {s.uid: s for s in tally.flush()}
    assert summaries[1000] == RefusalSummary(
        uid=1000, start=summaries[1000].start, end=summaries[1000].end,
        counts={Refusal.PRIVILEGE: 6805, Refusal.CONNECTIONS: 500},
        commands={"reload": 6805}, audited=1)
    assert summaries[1001].total == 1
    assert tally.flush() == []
    # a new window audits the first refusal on its own again
    assert tally.add(1000, Refusal.PRIVILEGE, "reload", individually=True)


# -- the server ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _server(tmp_path: Path, config: ControlConfig, changes: list[tuple[Any, ...]],
                  summaries: list[RefusalSummary]) -> AsyncIterator[ControlServer]:
    server = ControlServer(tmp_path / "c.sock", _commands(), admin_gid=ADMIN, config=config,
                           on_change=lambda *a: changes.append(a),
                           on_refusals=summaries.append)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def _raw(path: Path, payload: bytes) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    answer: dict[str, Any] = orjson.loads(data)
    return answer


def test_privilege_is_declared_where_commands_are_registered(tmp_path: Path) -> None:
    changes: list[tuple[Any, ...]] = []
    summaries: list[RefusalSummary] = []

    async def run() -> None:
        async with _server(tmp_path, ControlConfig(), changes, summaries) as server:
            assert await server.answer(Request("status", {}), STAFF) == {
                "ok": True, "result": {"uid": 1000}}
            assert await server.answer(Request("status", {}), OUTSIDER) == {
                "ok": False, "error": "status needs root or the admin group"}
            for _ in range(100):
                assert await server.answer(Request("reload", {}), STAFF) == {
                    "ok": False, "error": "reload needs root"}
            assert (await server.answer(Request("reload", {}), ROOT))["ok"]
            assert changes == [] or changes[0][1] == "reload"
    asyncio.run(run())
    # read-only commands: no change record; 100 refusals: one record + one summary;
    # root's reload: one record
    assert [(c[0].uid, c[1], c[3]) for c in changes] == [(1000, "reload", False),
                                                         (0, "reload", True)]
    by_uid = {s.uid: s for s in summaries}
    assert by_uid[1000].counts == {Refusal.PRIVILEGE: 100}
    assert by_uid[1000].audited == 1
    assert by_uid[1001].counts == {Refusal.PRIVILEGE: 1}


def test_component_commands_declare_read_only_where_they_are_registered() -> None:
    """kiosk.devices, audit.status and network.capture were root-only and audited as
    changes because a separate list (READ_ONLY_COMMANDS) did not name them."""
    policy = Policy()
    components: list[Any] = [
        EnforcementComponent(policy), AuditService(policy), KioskComponent(),
        MediaComponent(), NetworkComponent(policy.network), WifiComponent(policy)]
    declared = {name: (cmd.privilege, cmd.changes_state)
                for comp in components for name, cmd in comp.commands().items()}
    reads = (Privilege.ADMIN_GROUP, False)
    assert declared == {
        "net.blocks": reads, "net.unblock": (Privilege.ROOT, True),
        "net.block": (Privilege.ROOT, True),
        "audit.status": reads, "kiosk.devices": reads, "media.list": reads,
        "media.allow": (Privilege.ROOT, True), "network.capture": reads,
        "wifi.status": reads,
    }


def test_an_oversized_line_is_refused_without_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    changes: list[tuple[Any, ...]] = []
    summaries: list[RefusalSummary] = []

    async def run() -> list[dict[str, Any]]:
        async with _server(tmp_path, ControlConfig(), changes, summaries) as server:
            out = [await _raw(server.path, b"x" * 200_000 + b"\n"),
                   await _raw(server.path, b'{"command": "status"}' + b" " * 70_000 + b"\n"),
                   await _raw(server.path, b"[1, 2]\n"),
                   await _raw(server.path, b"\xff\xfe\n"),
                   await _raw(server.path, b'{"command": "nope"}\n')]
            assert server.counters()["bad_requests"] == 5
            assert server.gate.active == 0
            return out
    with caplog.at_level(logging.DEBUG):
        answers = asyncio.run(run())
    assert answers[0] == {"ok": False, "error": "request line over 65536 bytes refused"}
    assert answers[1] == answers[0]
    assert answers[2]["error"] == "bad request: not a JSON object"
    assert answers[3]["error"].startswith("bad request: ")
    assert answers[4]["error"] == "unknown command 'nope'"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert summaries[0].counts == {Refusal.BAD_REQUEST: 5}


def test_idle_connections_are_closed_and_floods_do_not_lock_root_out(tmp_path: Path) -> None:
    """Peers here are root (the test's own uid), so the per-uid cap is exercised through
    max_connections: the global cap answers and closes at once, nothing piles up."""
    config = ControlConfig(max_connections=4, root_reserve=1, idle_timeout=0.3)
    changes: list[tuple[Any, ...]] = []
    summaries: list[RefusalSummary] = []

    async def run() -> tuple[float, dict[str, int]]:
        async with _server(tmp_path, config, changes, summaries) as server:
            held = [await asyncio.open_unix_connection(str(server.path)) for _ in range(50)]
            await asyncio.sleep(0.05)
            assert server.gate.active == 4
            refused = 0
            for reader, _writer in held:
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(reader.read(), 0.01)
                    refused += b"too many control connections" in data
            assert refused == 46
            start = time.monotonic()
            await asyncio.sleep(0.5)  # idle timeout: the 4 held slots are free again
            assert server.gate.active == 0
            status = await asyncio.to_thread(request, server.path, "status", {}, 5.0)
            assert status == {"uid": 0}
            for _reader, writer in held:
                writer.close()
            return time.monotonic() - start, server.counters()
    elapsed, counters = asyncio.run(run())
    assert elapsed < 2.0
    assert counters["idle_closed"] == 4
    assert counters["connections_refused"] == 46


def test_client_retries_while_the_backlog_is_full(tmp_path: Path) -> None:
    """EAGAIN from a full listen backlog is "try again", not "daemon unreachable"."""
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # fill the backlog; nobody accepts yet
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(str(path))
        fillers.append(s)

    def serve() -> None:
        time.sleep(0.3)
        listener.settimeout(5)
        for _ in range(len(fillers) + 1):
            conn, _ = listener.accept()
            conn.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                if conn.recv(65536).startswith(b'{"command":"status"'):
                    conn.sendall(b'{"ok": true, "result": 7}\n')
                    conn.close()
                    return
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert request(path, "status", {}, timeout=5) == 7
    finally:
        thread.join(5)
        for s in fillers:
            s.close()
        listener.close()


def test_privilege_enum_is_what_the_helpers_declare() -> None:
    assert read_only(_echo).privilege is Privilege.ADMIN_GROUP
    assert not read_only(_echo).changes_state
    assert changing(_echo).privilege is Privilege.ROOT
    assert changing(_echo).changes_state


def test_the_unit_gives_the_daemon_descriptors_beyond_the_control_cap() -> None:
    """The issue's daemon had the default 1024 and no cap: 1,100 connections starved the
    audit writer. The cap holds the socket to max_connections; the unit's limit leaves
    headroom for everything else."""
    unit = Path(__file__).resolve().parents[3] / "systemd" / "edgeguard.service"
    limits = [int(line.split("=", 1)[1]) for line in unit.read_text().splitlines()
              if line.startswith("LimitNOFILE=")]
    assert limits
    assert limits[0] >= 4 * ControlConfig().max_connections + 1024
