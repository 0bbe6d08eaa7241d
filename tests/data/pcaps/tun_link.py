#!/usr/bin/env python3
"""A point-to-point link made of two tun devices (raw IP, like a VPN's inner side), for
make_issue19.sh: creates tun devices NAME_A and NAME_B in this namespace, moves them into
namespaces NS_A and NS_B, and copies every packet from one to the other for SECONDS.
  tun_link.py NS_A NAME_A NS_B NAME_B SECONDS"""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main() -> None:
    ns_a, name_a, ns_b, name_b, seconds = sys.argv[1:6]
    fa, fb = tun(name_a), tun(name_b)
    for ns, name in ((ns_a, name_a), (ns_b, name_b)):
        subprocess.run(["ip", "link", "set", name, "netns", ns], check=True)
    peer = {fa: fb, fb: fa}
    end = time.time() + float(seconds)
    while time.time() < end:
        ready, _, _ = select.select([fa, fb], [], [], 0.5)
        for fd in ready:
            with contextlib.suppress(OSError):
                os.write(peer[fd], os.read(fd, 65535))


if __name__ == "__main__":
    main()
