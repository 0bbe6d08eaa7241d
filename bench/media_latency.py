"""How fast does a new USB stick become read-only, and can a write ever beat it?

Root only. Runs the real systemd-udevd with the shipped rule (rules/61-edgeguard-media
.rules) and the test-only identity rule, and attaches a loop-device "stick" N times.
Per attach it measures, from the moment the kernel's uevent reaches user space (t0, a
kernel-netlink listener):

* ``ro``    - when BLKROGET first reports the device read-only (a spinning reader),
* ``udev``  - when udev broadcasts the processed event: the earliest moment udisks2 or
              any automounter (the named peer) can act on the device,

and it races two writers against the rule:

* a *udev-event writer* that writes as soon as the processed event arrives - what an
  automounter or a user's script listening to udev could do (goal: 0 writes land),
* a *kernel-event writer* (root, listening to raw kernel uevents) - the window before
  udev has run at all; root can always win that race, and the figure shows its size.

Usage: ``python bench/media_latency.py [--count N]`` (default 50; the issue's goal is
<= 50 ms median and 0 landed writes in 1,000 attaches: ``--count 1000``).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "linux" / "media"))

import pyudev  # noqa: E402
from media_sticks import StickSpec, build_image, run, settle, udevd_with_rules  # noqa: E402

BLKROGET = 0x125E
KERNEL_MARK = b"KERNEL-RACER-WROTE-THIS"
UDEV_MARK = b"UDEV-RACER-WROTE-THIS!!"
KERNEL_OFF = 1 << 20
UDEV_OFF = 2 << 20


@dataclass
class Attach:
    t0: float | None = None
    t_ro: float | None = None
    t_udev: float | None = None
    kernel_write: bool = False
    udev_write: bool = False
    errors: list[str] = field(default_factory=list)


def _try_write(dev: str, offset: int, mark: bytes) -> bool:
    try:
        fd = os.open(dev, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.pwrite(fd, mark, offset)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _watch(source: str, name: str, attach: Attach, ready: threading.Event,
           done: threading.Event) -> None:
    ctx = pyudev.Context()
    mon = pyudev.Monitor.from_netlink(ctx, source=source)
    mon.filter_by("block")
    mon.start()
    ready.set()
    deadline = time.monotonic() + 5
    while not done.is_set() and time.monotonic() < deadline:
        dev = mon.poll(timeout=0.2)
        if dev is None or dev.sys_name != name or dev.action != "change":
            continue
        now = time.monotonic()
        if source == "kernel" and attach.t0 is None:
            attach.t0 = now
            attach.kernel_write = _try_write(f"/dev/{name}", KERNEL_OFF, KERNEL_MARK)
            return
        if source == "udev" and attach.t_udev is None and dev.get("ID_BUS") == "usb":
            attach.t_udev = now
            attach.udev_write = _try_write(f"/dev/{name}", UDEV_OFF, UDEV_MARK)
            return


def one_attach(image: Path) -> Attach:
    dev = run("/usr/sbin/losetup", "--find").stdout.strip()
    name = Path(dev).name
    run("/usr/sbin/blockdev", "--setrw", dev)
    attach = Attach()
    done = threading.Event()
    readies = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=_watch, args=(src, name, attach, ev, done), daemon=True)
               for src, ev in zip(("kernel", "udev"), readies, strict=True)]
    for t in threads:
        t.start()
    for ev in readies:
        ev.wait(5)
    fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    try:
        run("/usr/sbin/losetup", dev, str(image))
        deadline = time.monotonic() + 5
        buf = struct.pack("i", 0)
        while time.monotonic() < deadline:
            if struct.unpack("i", fcntl.ioctl(fd, BLKROGET, buf))[0]:
                attach.t_ro = time.monotonic()
                break
            os.sched_yield()
    finally:
        os.close(fd)
    for t in threads:
        t.join(6)
    done.set()  # only matters if an event never came (both threads time out at 5 s)
    run("/usr/sbin/losetup", "-d", dev, check=False)
    settle()
    run("/usr/sbin/blockdev", "--setrw", dev, check=False)
    return attach


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return (f"median {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms   "
            f"max {values[-1]:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="attaches (default 50)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("media_latency: needs root (loop devices, udevd)", file=sys.stderr)
        return 2
    count = max(1, min(args.count, 5000))
    results: list[Attach] = []
    with tempfile.TemporaryDirectory(prefix="egm-bench-") as tmp, udevd_with_rules():
        image = build_image(Path(tmp), StickSpec(name="bench", whole_disk="vfat", part_mib=8,
                                                 serial="BENCH-1"))
        pristine = image.read_bytes()
        started = time.monotonic()
        for _ in range(count):
            results.append(one_attach(image))
        elapsed = time.monotonic() - started
        data = image.read_bytes()
        landed_image = {"kernel": KERNEL_MARK in data, "udev": UDEV_MARK in data}
        unchanged = data == pristine
    ro = [(a.t_ro - a.t0) * 1000 for a in results if a.t_ro and a.t0]
    udev = [(a.t_udev - a.t0) * 1000 for a in results if a.t_udev and a.t0]
    k_writes = sum(a.kernel_write for a in results)
    u_writes = sum(a.udev_write for a in results)
    missed = sum(1 for a in results if a.t_ro is None)
    print(f"media_latency: {count} attaches of a loop-device USB stick in {elapsed:.1f} s "
          f"(kernel {os.uname().release}, systemd-udevd standalone)")
    print(f"  edgeguard rule: kernel uevent -> ro flag set       {_ms(ro)}")
    print(f"  peer (udisks2): kernel uevent -> udev broadcast    {_ms(udev)}"
          "   (earliest automount)")
    print(f"  writes landed, writer on udev event (automounter view): {u_writes}/{count}"
          f"   goal 0")
    print(f"  writes landed, root writer on raw kernel uevent (pre-udev window): "
          f"{k_writes}/{count}")
    print(f"  never became read-only: {missed}/{count}   image marks found: "
          f"udev-writer {landed_image['udev']}, kernel-writer {landed_image['kernel']}   "
          f"image unchanged: {unchanged}")
    goal = bool(ro) and statistics.median(ro) <= 50 and u_writes == 0 and missed == 0
    print(f"  goal (median <= 50 ms, 0 writes after udev event, always ro): "
          f"{'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
