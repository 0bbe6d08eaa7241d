"""Write the nl80211 recordings in tests/data/wifi/nl80211/ from the documented layouts.

Each scenario is a list of datagrams exactly as the kernel lays them out (nlmsghdr,
genlmsghdr, attributes; ``linux/nl80211.h``), built with the same encoder the daemon
uses for its requests and with the elements of the annotated IE vectors. Regenerate
with ``python -m tests.unit.wifi.recordings``; a test checks the files are current.
The lab helper records real ones with ``LiveBackend(record=path)`` in the same format.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from edgeguard.wifi import nl80211 as nl
from edgeguard.wifi.nl80211 import BssInfo

from .vectors import DATA, load_vectors

OUT = DATA / "nl80211"
FAMILY = 30  # generic netlink ids are dynamic; the header of a recording names it
WLAN0 = 3
IES = {v.name: v.ies for v in load_vectors()}

HOME = "02:00:00:00:01:01"
CAFE = "02:00:00:00:02:02"
TRUST = "02:00:00:00:03:03"
TWIN = "02:66:66:66:66:66"
OLD = "02:00:00:00:04:04"
ODD = "02:00:00:00:05:05"


def ssid(name: str) -> bytes:
    raw = name.encode()
    return bytes([0, len(raw)]) + raw


def without_ssid(ies: bytes) -> bytes:
    return ies[2 + ies[1]:] if ies[:1] == b"\0" else ies


def bss(bssid: str, name: str, vector: str, privacy: bool, associated: bool = False,
        freq: int = 2437) -> BssInfo:
    return BssInfo(bssid, freq, 0x0401 | (0x10 if privacy else 0),
                   ssid(name) + without_ssid(IES[vector]), None, 1 if associated else None)


def u32(kind: int, value: int) -> bytes:
    return nl.attr(kind, struct.pack("=I", value))


def mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def event(cmd: int, *attrs: bytes) -> dict[str, object]:
    return {"type": "event", "data": nl.encode(FAMILY, cmd, list(attrs)).hex()}


def connect(bssid: str, status: int = 0) -> dict[str, object]:
    return event(nl.CMD_CONNECT, u32(nl.ATTR_WIPHY, 0), u32(nl.ATTR_IFINDEX, WLAN0),
                 nl.attr(nl.ATTR_MAC, mac(bssid)),
                 nl.attr(nl.ATTR_STATUS_CODE, struct.pack("=H", status)))


def disconnect(reason: int = 3) -> dict[str, object]:
    return event(nl.CMD_DISCONNECT, u32(nl.ATTR_WIPHY, 0), u32(nl.ATTR_IFINDEX, WLAN0),
                 nl.attr(nl.ATTR_REASON_CODE, struct.pack("=H", reason)))


def new_scan_results() -> dict[str, object]:
    return event(nl.CMD_NEW_SCAN_RESULTS, u32(nl.ATTR_WIPHY, 0), u32(nl.ATTR_IFINDEX, WLAN0))


def scan_dump(*entries: BssInfo, seq: int = 0) -> dict[str, object]:
    data = [nl.encode(FAMILY, nl.CMD_NEW_SCAN_RESULTS, [u32(nl.ATTR_IFINDEX, WLAN0),
                                                        nl.bss_attr(e)], seq=seq, flags=2)
            for e in entries]
    data.append(nl.encode_done(seq))
    return {"type": "dump", "request": "get_scan", "ifindex": WLAN0,
            "data": [d.hex() for d in data]}


def interfaces() -> dict[str, object]:
    msg = nl.encode(FAMILY, nl.CMD_NEW_INTERFACE, [
        u32(nl.ATTR_IFINDEX, WLAN0), nl.attr(nl.ATTR_IFNAME, b"wlan0\0"),
        u32(nl.ATTR_WIPHY, 0), u32(nl.ATTR_IFTYPE, nl.IFTYPE_STATION)], flags=2)
    return {"type": "dump", "request": "get_interface",
            "data": [msg.hex(), nl.encode_done(0).hex()]}


def header(note: str) -> dict[str, object]:
    return {"type": "header", "family_id": FAMILY, "interfaces": {str(WLAN0): "wlan0"},
            "note": note}


SCENARIOS: dict[str, list[dict[str, object]]] = {
    "home-wpa3": [
        header("join a home WPA3-SAE network: allowed, not trusted, VPN required"),
        interfaces(), scan_dump(),
        connect(HOME), scan_dump(bss(HOME, "home", "wpa3-sae", True, associated=True)),
        disconnect(),
    ],
    "cafe-open": [
        header("join an open cafe network twice: refused (public), then refused again"),
        interfaces(), scan_dump(),
        connect(CAFE), scan_dump(bss(CAFE, "cafe", "open", False, associated=True)),
        connect(CAFE), scan_dump(bss(CAFE, "cafe", "open", False, associated=True)),
    ],
    "trusted-then-leave": [
        header("the trust's enterprise network lifts the kill switch; leaving engages it"),
        interfaces(), scan_dump(),
        connect(TRUST), scan_dump(bss(TRUST, "trust-staff", "wpa3-enterprise", True,
                                      associated=True, freq=5180)),
        disconnect(),
    ],
    "evil-twin": [
        header("scan shows trust-staff from an unknown BSSID with WPA2-PSK, then we join it"),
        interfaces(), scan_dump(),
        new_scan_results(),
        scan_dump(bss(TRUST, "trust-staff", "wpa3-enterprise", True, freq=5180),
                  bss(TWIN, "trust-staff", "wpa2-psk", True),
                  bss(HOME, "home", "wpa3-sae", True)),
        connect(TWIN), scan_dump(bss(TWIN, "trust-staff", "wpa2-psk", True, associated=True)),
    ],
    "coldplug-wep": [
        header("already associated to a WEP network when edgeguard starts"),
        interfaces(), scan_dump(bss(OLD, "old", "wep", True, associated=True)),
    ],
    "malformed": [
        header("a broken datagram, a failed attempt, and a BSS whose RSN element is cut"),
        interfaces(), scan_dump(),
        {"type": "event", "data": "ffff0000"},
        {"type": "event", "data": nl.encode(FAMILY, nl.CMD_CONNECT, [])[:-2].hex() + "0000"
         + "dead"},
        connect(ODD, status=1),
        connect(ODD), scan_dump(bss(ODD, "odd", "truncated-suite", True, associated=True)),
    ],
}


def render(entries: list[dict[str, object]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)


def write(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entries in SCENARIOS.items():
        path = out / f"{name}.jsonl"
        path.write_text(render(entries))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write():
        print(p)
