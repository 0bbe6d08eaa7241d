"""Recorded descriptor trees (tests/data/usb/) -> sysfs ``descriptors`` bytes and a fake
``/sys/bus/usb/devices`` tree, so edgeguard's real parser and sysfs writer run over them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "data" / "usb"
FIXTURES = sorted(p.stem for p in DATA.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return doc


def _bcd(text: str) -> int:
    major, minor = text.split(".")
    return int(major, 16) << 8 | int(minor, 16)


def _triple(text: str) -> tuple[int, int, int]:
    a, b, c = (int(x, 16) for x in text.split("/"))
    return a, b, c


def _descriptor(d: dict[str, Any]) -> bytes:
    if d["type"] == "interface":
        cls, sub, proto = _triple(d["class"])
        return struct.pack("<BBBBBBBBB", 9, 4, d["bInterfaceNumber"], d["bAlternateSetting"],
                           d["bNumEndpoints"], cls, sub, proto, d.get("iInterface", 0))
    if d["type"] == "endpoint":
        return struct.pack("<BBBBHB", 7, 5, int(d["bEndpointAddress"], 16), d["bmAttributes"],
                           d["wMaxPacketSize"], d["bInterval"])
    raw = bytes.fromhex(d["hex"])
    assert raw[0] == len(raw), f"raw descriptor length byte wrong: {d}"
    return raw


def encode(tree: dict[str, Any]) -> bytes:
    """The exact layout of the sysfs ``descriptors`` attribute."""
    dev = tree["device"]
    cls, sub, proto = _triple(dev["class"])
    configs = tree["configurations"]
    out = struct.pack("<BBHBBBBHHHBBBB", 18, 1, _bcd(dev["bcdUSB"]), cls, sub, proto,
                      dev["bMaxPacketSize0"], int(dev["idVendor"], 16),
                      int(dev["idProduct"], 16), _bcd(dev["bcdDevice"]), dev["iManufacturer"],
                      dev["iProduct"], dev["iSerial"], len(configs))
    for conf in configs:
        body = b"".join(_descriptor(d) for d in conf["descriptors"])
        n_if = len({d["bInterfaceNumber"] for d in conf["descriptors"]
                    if d["type"] == "interface"})
        out += struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), n_if, conf["bConfigurationValue"],
                           conf.get("iConfiguration", 0), int(conf["bmAttributes"], 16),
                           conf["MaxPower_mA"] // 2) + body
    return out


def tree_from_bytes(data: bytes) -> list[dict[str, Any]]:
    """A real ``descriptors`` file as raw hex descriptors, for turning into a fixture."""
    out = [{"type": "raw", "hex": data[:18].hex()}]
    offset = 18
    while offset + 2 <= len(data) and data[offset] >= 2:
        out.append({"type": "raw", "hex": data[offset:offset + data[offset]].hex()})
        offset += data[offset]
    return out


class FakeSysfs:
    """``<root>/bus/usb/devices/…`` with root hubs and devices as real files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "bus" / "usb" / "devices"
        self.devices.mkdir(parents=True)

    def add_root_hub(self, bus: int, *, interface_auth: bool = True) -> Path:
        hub = self.devices / f"usb{bus}"
        hub.mkdir()
        (hub / "authorized_default").write_text("1\n")
        (hub / "authorized").write_text("1\n")
        if interface_auth:
            (hub / "interface_authorized_default").write_text("1\n")
        return hub

    def add_device(self, bus_path: str, fixture: str | dict[str, Any], *,
                   authorized: bool = False, interface_auth: bool = True,
                   descriptors: bytes | None = None) -> Path:
        tree = load(fixture) if isinstance(fixture, str) else fixture
        path = self.devices / bus_path
        path.mkdir()
        (path / "descriptors").write_bytes(descriptors if descriptors is not None
                                           else encode(tree))
        (path / "authorized").write_text("1\n" if authorized else "0\n")
        dev = tree["device"]
        (path / "idVendor").write_text(dev["idVendor"] + "\n")
        (path / "idProduct").write_text(dev["idProduct"] + "\n")
        for key in ("manufacturer", "product", "serial", "removable"):
            value = tree["sysfs"].get(key)
            if value is not None:
                (path / key).write_text(value + "\n")
        if authorized:
            self.configure(bus_path, tree, interface_auth=interface_auth)
        return path

    def configure(self, bus_path: str, tree: dict[str, Any], *, interface_auth: bool = True,
                  interface_default: str = "1") -> None:
        """What the kernel does on authorisation: the first configuration's interfaces."""
        conf = tree["configurations"][0]
        for d in conf["descriptors"]:
            if d["type"] != "interface" or d["bAlternateSetting"] != 0:
                continue
            name = f"{bus_path}:{conf['bConfigurationValue']}.{d['bInterfaceNumber']}"
            iface = self.devices / bus_path / name
            iface.mkdir(exist_ok=True)
            for key, value in zip(("Class", "SubClass", "Protocol"), d["class"].split("/"),
                                  strict=True):
                (iface / f"bInterface{key}").write_text(value + "\n")
            if interface_auth:
                (iface / "authorized").write_text(interface_default + "\n")

    def read(self, rel: str) -> str:
        return (self.devices / rel).read_text().strip()
