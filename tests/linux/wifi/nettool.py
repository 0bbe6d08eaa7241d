"""Tiny traffic tool the kill-switch tests run inside their namespaces.

    nettool.py send HOST PORT [--device IF] [--tcp]  -> prints "sent" or "blocked <errno>"
    nettool.py recv PORT SECONDS                      -> prints the datagrams received
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import time


def send(host: str, port: int, device: str | None, tcp: bool) -> int:
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(2)
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        try:
            if tcp:
                sock.connect((host, port))
                sock.sendall(b"edgeguard-test")
            else:
                for _ in range(3):
                    sock.sendto(b"edgeguard-test", (host, port))
        except OSError as exc:
            print(f"blocked {errno.errorcode.get(exc.errno or 0, exc.errno)}")
            return 0
        except TimeoutError:
            print("blocked timeout")
            return 0
    print("sent")
    return 0


def recv(port: int, seconds: float) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
        sock.settimeout(0.2)
        print("ready", flush=True)
        got = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                sock.recvfrom(2048)
                got += 1
            except TimeoutError:
                continue
    print(got)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--device")
    p.add_argument("--tcp", action="store_true")
    r = sub.add_parser("recv")
    r.add_argument("port", type=int)
    r.add_argument("seconds", type=float)
    args = parser.parse_args()
    if args.cmd == "send":
        return send(args.host, args.port, args.device, args.tcp)
    return recv(args.port, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
