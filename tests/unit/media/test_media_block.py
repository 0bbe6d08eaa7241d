"""KernelBlockLayer against a stand-in sysfs tree: de-authorisation writes the right file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeguard.media.block import DeviceGone, KernelBlockLayer

IFACE = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0"


def test_deauthorize_uses_the_bus_path_and_is_idempotent(tmp_path: Path) -> None:
    attr = tmp_path / "bus" / "usb" / "devices" / "1-2:1.0" / "authorized"
    attr.parent.mkdir(parents=True)
    attr.write_text("1\n")
    layer = KernelBlockLayer(dev=tmp_path / "dev", sys=tmp_path)
    assert layer.deauthorize(IFACE) is True
    assert attr.read_text() == "0"
    assert layer.deauthorize(IFACE) is False


def test_deauthorize_falls_back_to_the_device_path(tmp_path: Path) -> None:
    attr = tmp_path / IFACE.removeprefix("/sys/") / "authorized"
    attr.parent.mkdir(parents=True)
    attr.write_text("1")
    assert KernelBlockLayer(sys=tmp_path).deauthorize(IFACE) is True
    assert attr.read_text() == "0"


def test_deauthorize_refuses_odd_paths_and_reports_gone(tmp_path: Path) -> None:
    layer = KernelBlockLayer(sys=tmp_path)
    with pytest.raises(ValueError, match="bad USB sysfs path"):
        layer.deauthorize("/etc/../sys/x")
    with pytest.raises(ValueError, match="bad USB sysfs path"):
        layer.deauthorize("/tmp/x")
    with pytest.raises(DeviceGone):
        layer.deauthorize(IFACE)


def test_missing_block_device_is_gone(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    with pytest.raises(DeviceGone):
        KernelBlockLayer(dev=tmp_path / "dev", sys=tmp_path).read_only("sdz")
