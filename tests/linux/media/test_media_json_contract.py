"""``edgeguard media list --json`` of the real daemon over real loop "USB sticks": every
line validates against docs/schema/edgeguard-ecs.schema.json and says what the kernel
says (the read-only flag) about every node. See tests/unit/test_json_contract.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from media_sticks import Stick, StickSpec, blkroget
from test_media_daemon import Daemon

from tests.support.schema import validate_lines

pytestmark = pytest.mark.linux


@pytest.fixture
def daemon(udevd: None, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    d.start()
    yield d
    d.stop()


def test_media_list_json_matches_the_kernel(
        stick_factory: Callable[[StickSpec], Stick], daemon: Daemon) -> None:
    trust = stick_factory(StickSpec(name="c-luks", partitions=("vfat", "luks2"),
                                    serial="EGM-TRUST-0042"))
    other = stick_factory(StickSpec(name="c-other", partitions=("ext4",),
                                    serial="EGM-CONTRACT-0001"))
    plain, luks = trust.partitions
    daemon.wait_for(lambda: not blkroget(luks), "ro lifted on the LUKS partition")
    nodes = [trust.loop, *trust.partitions, other.loop, *other.partitions]

    def listed() -> dict[str, dict[str, object]]:
        done = daemon.media("list", "--json")
        assert done.returncode == 0, done.stderr
        return {r["volume"]["device_name"]: r for r in validate_lines(done.stdout)}

    daemon.wait_for(lambda: {f"/dev/{n}" for n in nodes} <= set(listed()), "all nodes listed")
    rows = listed()
    for node in nodes:
        row = rows[f"/dev/{node}"]
        assert row["event"]["action"] == "usb-storage-state"  # type: ignore[index]
        assert row["volume"]["writable"] is (not blkroget(node)), node  # type: ignore[index]
    assert rows[f"/dev/{luks}"]["edgeguard"]["media"]["verdict"] == "write-allowed"  # type: ignore[index]
    assert rows[f"/dev/{plain}"]["volume"]["writable"] is False  # type: ignore[index]
    assert {rows[f"/dev/{n}"]["edgeguard"]["media"]["verdict"]  # type: ignore[index]
            for n in other.partitions} == {"read-only"}
