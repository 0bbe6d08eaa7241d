"""Boot the lab guest in QEMU (TCG) and drive it: commands over virtio-serial, USB hot-plug
over QMP, the working tree shared read-only over 9p so the guest runs the current code.
"""

# ruff: noqa: S603, S108 - QEMU argv is built here; /tmp paths are inside the guest
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .image import GuestImage
from .qmp import QMP
from .sdimage import SystemdImage

__all__ = ["GuestError", "LabVM", "Result", "qemu_binary"]

MAGIC = b"EGL1"
XHCI_USB2_PORTS = 4  # qemu-xhci's default p2: root ports 1-4 take USB 2 devices
SD_SLOT = "sdslot"  # the built-in SD reader's drive (an empty slot until insert_card)
SRC = "/src"  # the working tree inside the guest (read-only)
SCRATCH = "/lab"  # the host scratch directory inside the guest (read-write)
CMDLINE = ("console=ttyS0", "rdinit=/init", "panic=-1", "loglevel=4",
           "usb_storage.delay_use=0", "net.ifnames=0", "mitigations=off")
#: The systemd guest (edgelab.sdimage): root on the virtio disk, systemd as PID 1.
SYSTEMD_CMDLINE = ("console=ttyS0", "rdinit=/init", "root=/dev/vda", "rw", "panic=-1",
                   "loglevel=4", "usb_storage.delay_use=0", "net.ifnames=0",
                   "mitigations=off", "systemd.show_status=false")


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


class GuestError(RuntimeError):
    """A guest command failed (non-zero exit, timeout) or the agent reported an error."""


@dataclass(frozen=True)
class Result:
    """What a guest command did."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def check(self) -> Result:
        if self.rc != 0 or self.timed_out:
            raise GuestError(f"guest {list(self.argv)} -> rc={self.rc} "
                             f"timed_out={self.timed_out}\n{self.stdout}\n{self.stderr}")
        return self


@dataclass
class _Plugged:
    dev_id: str
    node: str | None
    image: Path | None


@dataclass
class LabVM:
    """One running guest. Not re-entrant across processes; thread-safe for commands."""

    image: GuestImage | SystemdImage
    share: Path
    workdir: Path
    #: The guest's root disk (virtio, /dev/vda): a copy of SystemdImage.disk it may write.
    disk: Path | None = None
    cmdline: tuple[str, ...] = CMDLINE
    smp: int = 2
    mem_mib: int = 2048
    boot_timeout: float = 300.0
    proc: subprocess.Popen[bytes] | None = None
    qmp: QMP | None = None
    plugged: dict[str, _Plugged] = field(default_factory=dict)
    spawned: set[int] = field(default_factory=set)
    boot_seconds: float = 0.0
    _sock: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def scratch(self) -> Path:
        return self.workdir / "scratch"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    def argv(self) -> list[str]:
        qemu = qemu_binary()
        if qemu is None:
            raise RuntimeError("qemu-system-x86_64 not installed (ci/apt.d/lab.txt)")
        w = self.workdir
        return [
            qemu, "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", str(self.smp),
            "-m", str(self.mem_mib), "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
            "-append", " ".join(self.cmdline),
            "-chardev", f"file,id=con,path={self.console_log}", "-serial", "chardev:con",
            "-qmp", f"unix:{w / 'qmp.sock'},server=on,wait=off",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", f"socket,id=agent,path={w / 'agent.sock'},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=edgelab",
            "-device", "virtio-rng-pci",
            "-device", "qemu-xhci,id=xhci",
            # a built-in SD reader with an empty slot: insert_card() puts a card in
            # (the guest sees card-detect, as on a laptop); SD buses are not hot-pluggable
            "-device", "sdhci-pci,id=sdhci", "-drive", f"if=none,id={SD_SLOT}",
            "-device", f"sd-card,drive={SD_SLOT},id=sdcard",
            "-virtfs", f"local,path={self.share},mount_tag=src,security_model=none,readonly=on",
            "-virtfs", f"local,path={self.scratch},mount_tag=lab,security_model=none",
            *(["-drive", f"file={self.disk},format=raw,if=virtio,cache=writeback"]
              if self.disk is not None else []),
        ]

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(exist_ok=True)
        t0 = time.monotonic()
        with (self.workdir / "qemu.log").open("wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP(self.workdir / "qmp.sock")
            self._sock = self._connect(self.workdir / "agent.sock")
            self._request({"op": "ping"}, timeout=self.boot_timeout)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - t0

    def _connect(self, path: Path) -> socket.socket:
        deadline = time.monotonic() + 30
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return sock

    def stop(self) -> None:
        """Power off: the guest holds nothing worth a clean shutdown."""
        if self.qmp is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self.qmp.execute("quit")
            self.qmp.close()
            self.qmp = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
            self.proc = None

    def poweroff(self, timeout: float = 180) -> float:
        """Shut the guest down from inside (``systemctl poweroff``: units stop, the
        disk is synced) and wait for QEMU to exit; returns the seconds it took. start()
        boots it again from the same disk: a reboot that keeps the disk."""
        assert self.proc is not None
        t0 = time.monotonic()
        self._request({"op": "spawn", "argv": ["/usr/bin/systemctl", "poweroff"],
                       "log": "/dev/null", "env": None, "cwd": None}, timeout=30)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.spawned.clear()
            self.plugged.clear()
            self.stop()
        return time.monotonic() - t0

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- agent -----------------------------------------------------------------------------
    def _request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._sock is None or self.proc is None:
            raise GuestError("the lab VM is not running")
        with self._lock:
            ident = next(self._ids)
            body = json.dumps({**req, "id": ident}).encode()
            self._sock.sendall(MAGIC + struct.pack(">I", len(body)) + body)
            deadline = time.monotonic() + timeout
            while True:
                reply = self._read_frame(deadline)
                if reply.get("id") == ident or not reply.get("ok", True):
                    break
        if not reply.get("ok"):
            raise GuestError(f"agent: {req.get('op')} failed: {reply.get('error')}")
        return reply

    def _read_exact(self, n: int, deadline: float) -> bytes:
        assert self._sock is not None
        assert self.proc is not None
        buf = b""
        while len(buf) < n:
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited ({self.proc.returncode}); console:\n"
                                 + self.console_tail())
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the lab guest agent did not answer in time; console:\n"
                                   + self.console_tail())
            ready, _, _ = select.select([self._sock], [], [], min(left, 1.0))
            if ready:
                chunk = self._sock.recv(n - len(buf))
                if not chunk:
                    raise GuestError("agent socket closed")
                buf += chunk
        return buf

    def _read_frame(self, deadline: float) -> dict[str, Any]:
        window = b""
        while window != MAGIC:
            window = (window + self._read_exact(1, deadline))[-4:]
        (length,) = struct.unpack(">I", self._read_exact(4, deadline))
        msg: dict[str, Any] = json.loads(self._read_exact(length, deadline))
        return msg

    def run(self, *argv: str, timeout: float = 60, input: bytes | str | None = None,
            env: dict[str, str] | None = None, cwd: str | None = None,
            check: bool = True) -> Result:
        """Run ``argv`` in the guest and wait for it (no shell)."""
        data = input.encode() if isinstance(input, str) else input
        req: dict[str, Any] = {"op": "exec", "argv": list(argv), "timeout": timeout,
                               "env": env, "cwd": cwd,
                               "input": None if data is None else base64.b64encode(data).decode()}
        rep = self._request(req, timeout=timeout + 30)
        res = Result(tuple(argv), rep["rc"],
                     base64.b64decode(rep["stdout"]).decode(errors="replace"),
                     base64.b64decode(rep["stderr"]).decode(errors="replace"),
                     rep["timed_out"])
        return res.check() if check else res

    def sh(self, script: str, *, timeout: float = 60, check: bool = True) -> Result:
        """Run a guest shell script: the guest is our own throwaway machine."""
        return self.run("/bin/sh", "-ec", script, timeout=timeout, check=check)

    def py(self, code: str, *args: str, timeout: float = 60, check: bool = True) -> Result:
        return self.run("/usr/bin/python3", "-c", code, *args, timeout=timeout, check=check)

    def spawn(self, *argv: str, log: str, env: dict[str, str] | None = None,
              cwd: str | None = None) -> int:
        """Start a background process in its own session; output goes to ``log``."""
        pid = int(self._request({"op": "spawn", "argv": list(argv), "log": log, "env": env,
                                 "cwd": cwd}, timeout=30)["pid"])
        self.spawned.add(pid)
        return pid

    def wait(self, pid: int, timeout: float = 0) -> int | None:
        rc = self._request({"op": "wait", "pid": pid, "timeout": timeout},
                           timeout=timeout + 30)["rc"]
        if rc is not None:
            self.spawned.discard(pid)
        return None if rc is None else int(rc)

    def kill(self, pid: int, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Signal a spawned process group and reap it (SIGKILL after ``timeout``)."""
        self._request({"op": "signal", "pid": pid, "sig": int(sig)}, timeout=30)
        rc = self.wait(pid, timeout)
        if rc is None:
            self._request({"op": "signal", "pid": pid, "sig": int(signal.SIGKILL)}, timeout=30)
            rc = self.wait(pid, 10)
        self.spawned.discard(pid)
        return rc

    def kill_all(self, pids: list[int], timeout: float = 10) -> None:
        """Signal every process group first, then reap: N stubborn processes cost one
        timeout, not N."""
        for pid in pids:
            self._request({"op": "signal", "pid": pid, "sig": int(signal.SIGTERM)}, timeout=30)
        deadline = time.monotonic() + timeout
        for pid in pids:
            if self.wait(pid, max(0.0, deadline - time.monotonic())) is None:
                self.kill(pid, signal.SIGKILL, timeout=10)
            self.spawned.discard(pid)

    def put(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._request({"op": "put", "path": path, "mode": mode,
                       "data": base64.b64encode(raw).decode()}, timeout=60)

    def get(self, path: str) -> bytes:
        return base64.b64decode(self._request({"op": "get", "path": path}, timeout=60)["data"])

    def uptime(self) -> float:
        return float(self._request({"op": "ping"}, timeout=30)["uptime"])

    # -- USB over QMP ----------------------------------------------------------------------
    def plug_stick(self, image: Path, *, serial: str | None = None, dev_id: str | None = None,
                   removable: bool = True, port: str | None = None) -> str:
        """Hot-plug ``image`` as a USB mass-storage stick; returns the QEMU device id.

        The backend is a -blockdev node added over QMP: unlike -drive it survives device_del,
        so the same image can be re-plugged.
        """
        assert self.qmp is not None
        n = next(self._serial)
        dev_id = dev_id or f"stick{n}"
        node = f"node-{dev_id}"
        self.qmp.execute("blockdev-add", driver="raw", **{"node-name": node},
                         file={"driver": "file", "filename": str(image)})
        props: dict[str, Any] = {"driver": "usb-storage", "bus": "xhci.0", "drive": node,
                                 "id": dev_id, "removable": removable}
        if serial:
            props["serial"] = serial
        if port:  # the xhci root port: ID_PATH follows it, whatever the stick claims
            props["port"] = port
        try:
            self.qmp.execute("device_add", **props)
        except Exception:
            self.qmp.execute("blockdev-del", **{"node-name": node})
            raise
        self.plugged[dev_id] = _Plugged(dev_id, node, image)
        return dev_id

    def free_usb2_ports(self) -> list[str]:
        """The xHCI root ports a USB 2 device (a stick) can take now: qemu-xhci numbers its
        USB 2 ports 1..XHCI_USB2_PORTS; "Port N" or "Port N.M" in `info usb` is taken."""
        assert self.qmp is not None
        listing = str(self.qmp.execute("human-monitor-command", **{"command-line": "info usb"}))
        taken = {m.group(1) for m in re.finditer(r"Port (\d+)", listing)}
        return [str(n) for n in range(1, XHCI_USB2_PORTS + 1) if str(n) not in taken]

    def plug_usb(self, driver: str, *, dev_id: str, **props: Any) -> str:
        """Hot-plug another USB device (``usb-kbd``, ``usb-net``, ...)."""
        assert self.qmp is not None
        self.qmp.execute("device_add", driver=driver, bus="xhci.0", id=dev_id, **props)
        self.plugged[dev_id] = _Plugged(dev_id, None, None)
        return dev_id

    def insert_card(self, image: Path) -> None:
        """Insert ``image`` as an SD card into the built-in reader (media change)."""
        assert self.qmp is not None
        self.qmp.execute("blockdev-change-medium", id="sdcard", filename=str(image),
                         format="raw")

    def eject_card(self) -> None:
        assert self.qmp is not None
        self.qmp.execute("eject", id="sdcard", force=True)

    def plug_cdrom(self, image: Path, *, dev_id: str, serial: str | None = None) -> str:
        """Hot-plug ``image`` as a USB CD/DVD drive (usb-storage over a media=cdrom drive:
        QEMU's scsi-cd)."""
        assert self.qmp is not None
        node = f"drv-{dev_id}"
        self.qmp.execute("human-monitor-command", **{"command-line": (
            f"drive_add 0 if=none,id={node},file={image},format=raw,media=cdrom,readonly=on")})
        props: dict[str, Any] = {"driver": "usb-storage", "bus": "xhci.0", "drive": node,
                                 "id": dev_id, "removable": True}
        if serial:
            props["serial"] = serial
        self.qmp.execute("device_add", **props)
        self.plugged[dev_id] = _Plugged(dev_id, None, image)
        return dev_id

    def plug_nvme(self, image: Path, *, dev_id: str, serial: str) -> str:
        """Hot-plug ``image`` as an NVMe disk on the PCI bus (a fixed, internal disk)."""
        assert self.qmp is not None
        node = f"node-{dev_id}"
        self.qmp.execute("blockdev-add", driver="raw", **{"node-name": node},
                         file={"driver": "file", "filename": str(image)})
        self.qmp.execute("device_add", driver="nvme", id=dev_id, drive=node, serial=serial)
        self.plugged[dev_id] = _Plugged(dev_id, node, image)
        return dev_id

    def unplug(self, dev_id: str, timeout: float = 20) -> None:
        """Pull the device out (waits for QEMU to confirm) and drop its backend."""
        assert self.qmp is not None
        item = self.plugged.pop(dev_id)
        self.qmp.execute("device_del", id=dev_id)
        self.qmp.wait_event("DEVICE_DELETED", timeout, device=dev_id)
        if item.node is not None:
            self.qmp.execute("blockdev-del", **{"node-name": item.node})

    def unplug_all(self) -> None:
        for dev_id in list(self.plugged):
            self.unplug(dev_id)

    def pids_alive(self) -> list[int]:
        return [p for p in sorted(self.spawned) if self.wait(p) is None]


def env_for_edgeguard() -> dict[str, str]:
    """Environment that makes the guest's python3 import the host's working tree."""
    return {"PYTHONPATH": SRC, "PYTHONPYCACHEPREFIX": "/tmp/pycache",
            "PYTHONUNBUFFERED": "1", "PATH": os.defpath + ":/usr/sbin:/sbin"}
