"""Record real fixtures in the guest for the unit tests' replay backends.

* Beacons and probe responses: every AP class of :mod:`edgelab.wifi` runs in hostapd on its
  own mac80211_hwsim radio; ``hwsim0`` (hwsim's monitor of the whole simulated medium) is
  captured with tcpdump while a station scans actively. The information elements of each
  BSS's first beacon and probe response are stored as hex with a JSON label, and the
  capture itself, trimmed, as ``hwsim0.pcap`` (``wifi classify``'s fixture).
* Uevents: pyudev's monitor (source "udev", i.e. after the rules, what the daemon sees)
  records block-device events while sticks are plugged, opened and pulled.
"""

# ruff: noqa: S108 - /tmp paths are inside the throwaway guest
from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeguard.wifi import dot11

from . import sticks, wifi
from .vm import GuestError, LabVM

__all__ = ["UEVENT_SCENARIOS", "Frame", "bursts", "parse_pcap", "record_beacons",
           "record_uevent_scenario", "record_uevents", "trim_pcap"]

TOOLS = "/src/hardware/lab/tools"
BEACON, PROBE_RESP = 8, 5
CHANNELS = (1, 6, 11)


@dataclass(frozen=True)
class Frame:
    """One management frame from the capture."""

    subtype: int
    bssid: str
    capability: int
    ies: bytes
    channel_mhz: int | None


def _records(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(record header, frame) of each record of tcpdump's radiotap pcap."""
    magic, = struct.unpack_from("<I", data, 0)
    if magic != 0xA1B2C3D4:
        raise ValueError("not a little-endian microsecond pcap")
    if struct.unpack_from("<I", data, 20)[0] != dot11.LINKTYPE_IEEE802_11_RADIOTAP:
        raise ValueError("pcap is not radiotap")
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        yield data[off:off + 16], data[off + 16:off + 16 + incl]
        off += 16 + incl


def _mgmt(pkt: bytes) -> dot11.MgmtFrame | None:
    try:
        return dot11.parse_frame(pkt, dot11.LINKTYPE_IEEE802_11_RADIOTAP)
    except dot11.MalformedFrame:
        return None


def parse_pcap(data: bytes) -> Iterator[Frame]:
    """Beacons and probe responses of a radiotap (linktype 127) pcap, read with
    edgeguard's own 802.11 parser (the one ``wifi classify`` uses)."""
    for _hdr, pkt in _records(data):
        mgmt = _mgmt(pkt)
        if mgmt is not None:
            yield Frame(mgmt.subtype, mgmt.bssid, mgmt.capability, mgmt.ies, mgmt.freq_mhz)


def trim_pcap(data: bytes, per_bss: int = 3, others: int = 40) -> bytes:
    """The capture cut to a fixture: the first ``per_bss`` beacons and probe responses of
    each BSSID, and the first ``others`` other frames (probe requests, ACKs...) so a
    reader meets what a real monitor capture holds. Records are kept byte for byte."""
    out = [data[:24]]
    kept: dict[tuple[str, int], int] = {}
    rest = 0
    for hdr, pkt in _records(data):
        mgmt = _mgmt(pkt)
        if mgmt is None:
            if rest < others:
                rest += 1
                out.append(hdr + pkt)
            continue
        key = (mgmt.bssid, mgmt.subtype)
        if kept.get(key, 0) < per_bss:
            kept[key] = kept.get(key, 0) + 1
            out.append(hdr + pkt)
    return b"".join(out)


def _hostapd_version(vm: LabVM) -> str:
    out = vm.run("/usr/sbin/hostapd", "-v", check=False)
    text = out.stderr + out.stdout
    return next((line for line in text.splitlines() if line.startswith("hostapd v")), "?")


def record_beacons(vm: LabVM, outdir: Path, classes: tuple[wifi.ApClass, ...] | None = None,
                   ) -> dict[str, dict[str, Any]]:
    """Run every class at once, capture, and write ``<name>.<frame>.hex`` + ``.json``.
    Returns the labels written, by file stem. A class hostapd refuses is skipped and
    reported in ``skipped.json`` with hostapd's reason."""
    classes = classes or wifi.AP_CLASSES
    outdir.mkdir(parents=True, exist_ok=True)
    radios = wifi.hwsim(vm, len(classes) + 1)
    station = radios[-1]
    vm.sh("ip link set hwsim0 up")
    pcap = "/lab/beacons.pcap"
    cap = vm.spawn("/usr/bin/tcpdump", "-i", "hwsim0", "-U", "-w", pcap, "-s", "0",
                   log="/tmp/tcpdump.log")
    running: dict[str, tuple[wifi.ApClass, wifi.Radio, str, int]] = {}
    skipped: dict[str, str] = {}
    started = []
    for i, (cls, radio) in enumerate(zip(classes, radios, strict=False)):
        ssid = f"eglab-{cls.name}"
        channel = CHANNELS[i % len(CHANNELS)]
        pid, aplog = wifi.spawn_ap(vm, cls, radio, ssid=ssid, channel=channel)
        started.append((cls, radio, ssid, channel, pid, aplog))
    for cls, radio, ssid, channel, pid, aplog in started:  # all start in parallel
        try:
            wifi.wait_ap(vm, pid, aplog)
        except (GuestError, TimeoutError) as exc:  # hostapd refused it: record why
            skipped[cls.name] = str(exc)[-600:]
            continue
        running[radio.mac] = (cls, radio, ssid, channel)
    vm.run("/usr/sbin/ip", "link", "set", station.iface, "up")
    vm.run("/usr/sbin/iw", "dev", station.iface, "scan", timeout=60, check=False)
    vm.run("/usr/sbin/iw", "dev", station.iface, "scan", timeout=60, check=False)
    for _mac, (cls, _radio, ssid, _ch) in running.items():
        if cls.extra_bss:  # a hidden BSS answers only probes that name it
            vm.run("/usr/sbin/iw", "dev", station.iface, "scan", "ssid", f"{ssid}-owe",
                   timeout=60, check=False)
    time.sleep(1.0)
    vm.kill(cap, timeout=10)
    raw = vm.get(pcap)
    frames = list(parse_pcap(raw))
    (outdir / "hwsim0.pcap").write_bytes(trim_pcap(raw))  # wifi classify's fixture
    version = _hostapd_version(vm)
    kernel = vm.run("/bin/uname", "-r").stdout.strip()
    labels: dict[str, dict[str, Any]] = {}
    for mac, (cls, radio, ssid, channel) in running.items():
        conf = wifi.hostapd_conf(cls, radio, ssid, channel)
        bssids = {mac, mac[:-2] + "01"} if cls.extra_bss else {mac}
        for bssid in sorted(bssids):
            for subtype, kind in ((BEACON, "beacon"), (PROBE_RESP, "probe-resp")):
                frame = next((f for f in frames if f.bssid == bssid and f.subtype == subtype),
                             None)
                if frame is None:
                    continue
                hidden = bssid != mac
                stem = f"{cls.name}{'-hidden-owe' if hidden else ''}.{kind}"
                label = {
                    "class": "owe" if hidden else cls.security,
                    "ap_class": cls.name,
                    "ssid": f"{ssid}-owe" if hidden else ssid,
                    "bssid": bssid,
                    "frame": kind,
                    "capability": frame.capability,
                    "privacy": bool(frame.capability & 0x10),
                    "akm_suites": list((18,) if hidden else cls.akms),
                    "channel": channel,
                    "freq_mhz": frame.channel_mhz,
                    "ies_file": f"{stem}.hex",
                    "ies_len": len(frame.ies),
                    "hostapd_conf": conf,
                    "hostapd_version": version,
                    "guest_kernel": kernel,
                    "recorded_by": "hardware/lab: python3 -m edgelab record-beacons",
                }
                (outdir / f"{stem}.hex").write_text(frame.ies.hex() + "\n")
                (outdir / f"{stem}.json").write_text(json.dumps(label, indent=2) + "\n")
                labels[stem] = label
    (outdir / "skipped.json").write_text(json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    vm.kill_all([pid for *_, pid, _log in started])
    vm.sh("rmmod mac80211_hwsim; rm -f /lab/beacons.pcap")
    return labels


# -- uevents -------------------------------------------------------------------------------
@dataclass(frozen=True)
class UeventScenario:
    name: str
    description: str
    parts: tuple[sticks.Part, ...] = ()
    whole: str | None = None
    unplug_after: float = 1.0  # seconds after the disk is settled
    open_luks: bool = False
    quick_unplug: bool = False


UEVENT_SCENARIOS: tuple[UeventScenario, ...] = (
    UeventScenario("vfat-mbr", "MBR stick with one FAT32 partition: plug, settle, pull",
                   (sticks.Part("vfat", 40),)),
    UeventScenario("ext4-superfloppy", "ext4 on the whole disk (no partition table)",
                   whole="ext4"),
    UeventScenario("exfat-ext4-two-parts", "two partitions (exFAT, ext4)",
                   (sticks.Part("exfat", 24), sticks.Part("ext4", 24))),
    UeventScenario("luks-plus-plain", "LUKS2 partition + FAT32 partition; the container is "
                   "opened (dm-0 appears) and closed before the pull",
                   (sticks.Part("luks", 24), sticks.Part("vfat", 36)), open_luks=True),
    UeventScenario("pull-during-add", "stick pulled as soon as the disk's add event is out, "
                   "while the partitions are still being processed (late events can lose the USB "
                   "identity: udev then reports ID_BUS=scsi)",
                   (sticks.Part("vfat", 40),), quick_unplug=True),
)


BURST_GAP = 0.02  # seconds: events closer than this reached listeners together


def bursts(events: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """Block events grouped as the media replay backend takes them (``bursts``: each group
    reaches the simulated kernel before the engine reads any of it)."""
    out: list[list[dict[str, str]]] = []
    last = None
    for ev in events:
        if ev["properties"].get("SUBSYSTEM") != "block":
            continue
        if last is None or ev["t"] - last > BURST_GAP:
            out.append([])
        out[-1].append(ev["properties"])
        last = ev["t"]
    return out


def record_uevent_scenario(vm: LabVM, sc: UeventScenario, workdir: Path) -> dict[str, Any]:
    img = workdir / f"{sc.name}.img"
    if sc.whole:
        sticks.make_stick(img, whole=sc.whole, size_mib=48)
    else:
        sticks.make_stick(img, list(sc.parts))
    serial = f"EGLAB{zlib.crc32(sc.name.encode()) % 10**8:08d}"
    log = f"/tmp/uevents-{sc.name}.jsonl"
    vm.run("/bin/rm", "-f", log)
    pid = vm.spawn("/usr/bin/python3", f"{TOOLS}/uevents.py", log, "block", "usb", "scsi",
                   log="/tmp/uevents-recorder.log")
    deadline = time.monotonic() + 30
    while '"ready"' not in vm.run("/bin/cat", log, check=False).stdout:
        if time.monotonic() > deadline:
            raise TimeoutError("uevent recorder did not start")
        time.sleep(0.2)
    dev = vm.plug_stick(img, serial=serial)
    if sc.quick_unplug:  # pull as soon as the whole disk's add is out, partitions pending
        deadline = time.monotonic() + 30
        while '"DEVTYPE": "disk"' not in vm.run("/bin/cat", log, check=False).stdout:
            if time.monotonic() > deadline:
                raise TimeoutError("the stick's disk never appeared")
            time.sleep(0.05)
    else:
        vm.run("/usr/bin/python3", f"{TOOLS}/blockinfo.py", serial, "30", str(len(sc.parts)))
        if sc.open_luks:
            info = json.loads(vm.run("/usr/bin/python3", f"{TOOLS}/blockinfo.py", serial,
                                     "30", str(len(sc.parts))).stdout)
            node = info["partitions"][0]["node"]
            vm.run("/usr/sbin/cryptsetup", "open", "--key-file", "-", node, "eglab",
                   input=sticks.LUKS_KEY, timeout=120)
            vm.sh("udevadm settle")
            vm.run("/usr/sbin/cryptsetup", "close", "eglab", timeout=60)
        time.sleep(sc.unplug_after)
    vm.unplug(dev)
    vm.sh("udevadm settle")
    time.sleep(1.0)
    vm.kill(pid)
    lines = vm.get(log).decode().splitlines()
    events = [json.loads(line) for line in lines[1:] if line.strip()]
    return {
        "scenario": sc.name,
        "description": sc.description,
        "usb_serial": serial,
        "qemu_usb_id": "46f4:0001",
        "source": "recorded in the edgeguard lab guest (Debian kernel, systemd-udevd 252, "
                  "QEMU usb-storage hot-plug) with pyudev's monitor, stock rules only",
        "recorded_by": "hardware/lab: python3 -m edgelab record-uevents",
        "guest_kernel": vm.run("/bin/uname", "-r").stdout.strip(),
        "events": events,
        "bursts": bursts(events),
    }


def record_uevents(vm: LabVM, outdir: Path) -> dict[str, dict[str, Any]]:
    outdir.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    for sc in UEVENT_SCENARIOS:
        rec = record_uevent_scenario(vm, sc, outdir)
        (outdir / f"{sc.name}.img").unlink(missing_ok=True)
        (outdir / f"{sc.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
        done[sc.name] = rec
    return done
