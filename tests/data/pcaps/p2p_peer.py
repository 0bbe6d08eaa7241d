#!/usr/bin/env python3
"""A Gnutella-like peer for make_issue19.sh (run inside the lab namespaces only).

serve:  peer i listens on TCP and UDP port first_port+i of hosts[i % len(hosts)];
        answer a "GNUTELLA CONNECT" with "200 OK" and some data, echo UDP pings.
fanout: for peer i, host = hosts[i % len(hosts)], port = first_port + i: a UDP ping, then a
        TCP connection with the handshake and a data exchange; then UDP to the subnet
        broadcast, 255.255.255.255 and SSDP multicast (as Gnutella clients do for LAN
        discovery). Every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import time

HELLO = b"GNUTELLA CONNECT/0.6\r\nUser-Agent: lab/1\r\n\r\n"
OK = b"GNUTELLA/0.6 200 OK\r\n\r\n"


def serve(first: int, peers: int, hosts: list[str], seconds: float) -> None:
    """Peer i listens on hosts[i % len(hosts)] (so UDP answers come from the address
    the client contacted)."""
    sel = selectors.DefaultSelector()
    for i, port in enumerate(range(first, first + peers)):
        host = hosts[i % len(hosts)]
        t = socket.socket()
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((host, port))
        t.listen(8)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "accept")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((host, port))
        sel.register(u, selectors.EVENT_READ, "udp")
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "accept":
                conn, _ = sock.accept()
                conn.settimeout(2)
                try:
                    conn.recv(1024)
                    conn.sendall(OK + os.urandom(3000))
                    conn.recv(4096)
                except OSError:
                    pass
                conn.close()
            else:
                data, addr = sock.recvfrom(2048)
                sock.sendto(b"PONG" + data[:32], addr)


def hosts_of(spec: str) -> list[str]:
    base, rng = spec.rsplit(".", 1)
    lo, hi = (int(x) for x in rng.split("-"))
    return [f"{base}.{i}" for i in range(lo, hi + 1)]


def fanout(first: int, peers: int, hosts: list[str]) -> None:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    u.settimeout(0.3)
    for i in range(peers):
        host, port = hosts[i % len(hosts)], first + i
        u.sendto(b"GND\x01ping" + os.urandom(16), (host, port))
        with contextlib.suppress(OSError):
            u.recvfrom(2048)
        t = socket.socket()
        t.settimeout(2)
        try:
            t.connect((host, port))
            t.sendall(HELLO)
            t.recv(4096)
            t.sendall(os.urandom(2000))
            time.sleep(0.05)
        except OSError:
            pass
        t.close()
        time.sleep(0.1)
    for target in ("10.98.0.255", "255.255.255.255", "239.255.255.250"):
        with contextlib.suppress(OSError):
            u.sendto(b"GND\x01ping" + os.urandom(16), (target, 6346))
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["serve", "fanout"])
    ap.add_argument("--first-port", type=int, default=40000)
    ap.add_argument("--peers", type=int, default=26)
    ap.add_argument("--hosts", default="10.98.0.100-124")
    ap.add_argument("--seconds", type=float, default=120)
    a = ap.parse_args()
    if a.mode == "serve":
        serve(a.first_port, a.peers, hosts_of(a.hosts), a.seconds)
    else:
        fanout(a.first_port, a.peers, hosts_of(a.hosts))


if __name__ == "__main__":
    main()
