#!/usr/bin/python3
"""Guest agent of the edgeguard lab: runs the host's commands, one at a time.

Protocol (both directions): ``b"EGL1"`` + 4-byte big-endian length + a JSON object.
Binary payloads (stdin, stdout, stderr, file data) travel base64-encoded. Requests carry an
``op``; every answer carries ``ok`` and, on failure, ``error``.

  exec   argv, timeout, input?, env?, cwd?  -> rc, stdout, stderr, timed_out
  spawn  argv, log, env?, cwd?              -> pid     (own session; output to ``log``)
  wait   pid, timeout                       -> rc (null while running)
  signal pid, sig                           -> (signals the process group)
  put    path, data, mode?                  -> ;  get path -> data
  ping                                      -> uptime

With ``--pid1`` this process is init: it forks the agent and reaps every orphan (hostapd,
wpa_supplicant and the daemon fork or detach), restarting the agent if it dies.
"""

# ruff: noqa: S603 - running the host's argv is this agent's purpose
from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
from typing import Any

MAGIC = b"EGL1"
children: dict[int, subprocess.Popen[bytes]] = {}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def environ(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def op_exec(req: dict[str, Any]) -> dict[str, Any]:
    try:
        proc = subprocess.run(req["argv"], check=False, input=unb64(req.get("input")),
                              capture_output=True,
                              timeout=req.get("timeout", 60), env=environ(req.get("env")),
                              cwd=req.get("cwd"), start_new_session=True,
                              stdin=None if req.get("input") is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return {"rc": -1, "stdout": b64(exc.stdout or b""), "stderr": b64(exc.stderr or b""),
                "timed_out": True}
    except OSError as exc:
        return {"rc": 127, "stdout": "", "stderr": b64(str(exc).encode()), "timed_out": False}
    return {"rc": proc.returncode, "stdout": b64(proc.stdout), "stderr": b64(proc.stderr),
            "timed_out": False}


def op_spawn(req: dict[str, Any]) -> dict[str, Any]:
    with open(req["log"], "ab") as log:
        proc = subprocess.Popen(req["argv"], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=environ(req.get("env")),
                                cwd=req.get("cwd"), start_new_session=True)
    children[proc.pid] = proc
    return {"pid": proc.pid}


def op_wait(req: dict[str, Any]) -> dict[str, Any]:
    proc = children.get(req["pid"])
    if proc is None:
        return {"rc": None, "known": False}
    try:
        rc = proc.wait(timeout=req.get("timeout", 0) or 0.001)
    except subprocess.TimeoutExpired:
        return {"rc": None, "known": True}
    children.pop(req["pid"], None)
    return {"rc": rc, "known": True}


def op_signal(req: dict[str, Any]) -> dict[str, Any]:
    sig = int(req.get("sig", signal.SIGTERM))
    try:
        os.killpg(req["pid"], sig)
    except ProcessLookupError:
        return {"delivered": False}
    return {"delivered": True}


def op_put(req: dict[str, Any]) -> dict[str, Any]:
    data = unb64(req["data"]) or b""
    os.makedirs(os.path.dirname(req["path"]) or "/", exist_ok=True)
    with open(req["path"], "wb") as f:
        f.write(data)
    os.chmod(req["path"], int(req.get("mode", 0o644)))
    return {}


def op_get(req: dict[str, Any]) -> dict[str, Any]:
    with open(req["path"], "rb") as f:
        return {"data": b64(f.read())}


def op_ping(_req: dict[str, Any]) -> dict[str, Any]:
    with open("/proc/uptime") as f:
        return {"uptime": float(f.read().split()[0]), "kernel": os.uname().release}


OPS = {"exec": op_exec, "spawn": op_spawn, "wait": op_wait, "signal": op_signal,
       "put": op_put, "get": op_get, "ping": op_ping}


def read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:  # host not connected: virtio-serial reads return EOF
            time.sleep(0.1)
            continue
        buf += chunk
    return buf


def read_frame(fd: int) -> bytes:
    window = b""
    while window != MAGIC:  # resynchronise after a host that went away mid-frame
        window = (window + read_exact(fd, 1))[-4:]
    (length,) = struct.unpack(">I", read_exact(fd, 4))
    return read_exact(fd, length)


def write_frame(fd: int, obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    data = MAGIC + struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


def serve(port: str) -> None:
    for _ in range(600):  # udev creates the /dev/virtio-ports name
        if os.path.exists(port):
            break
        time.sleep(0.1)
    fd = os.open(port, os.O_RDWR)
    while True:
        raw = read_frame(fd)
        try:
            req = json.loads(raw)
            reply = {"ok": True, "id": req.get("id"), **OPS[req["op"]](req)}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the host
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        write_frame(fd, reply)


def pid1(port: str) -> None:
    while True:
        pid = os.fork()
        if pid == 0:
            serve(port)
            os._exit(0)
        while True:
            try:
                dead, status = os.wait()
            except ChildProcessError:
                time.sleep(0.5)
                continue
            if dead == pid:
                print(f"edgelab: agent exited ({status}), restarting", flush=True)
                break


if __name__ == "__main__":
    if sys.argv[1] == "--pid1":
        pid1(sys.argv[2])
    else:
        serve(sys.argv[1])
