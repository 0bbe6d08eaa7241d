"""Guest tool: describe the USB disk with a given serial (and its partitions) as JSON.

Run in the guest as ``python3 /src/hardware/lab/tools/blockinfo.py SERIAL [WAIT_S [NPARTS]]``.
Waits until udev has processed the disk (and at least NPARTS partitions), then prints
name, udev properties and both views of the read-only flag: sysfs ``ro`` and BLKROGET.
Exit 1 if it never appeared.
"""

import fcntl
import json
import struct
import subprocess
import sys
import time

import pyudev

BLKROGET = 0x125E


def ro_ioctl(node: str) -> int | None:
    try:
        with open(node, "rb") as f:
            buf = fcntl.ioctl(f.fileno(), BLKROGET, struct.pack("i", 0))
    except OSError:
        return None
    return int(struct.unpack("i", buf)[0])


def describe(dev: pyudev.Device) -> dict[str, object]:
    return {"name": dev.sys_name, "node": dev.device_node, "devtype": dev.device_type,
            "sysfs_ro": int(dev.attributes.asstring("ro")),
            "blkroget": ro_ioctl(dev.device_node),
            "properties": dict(dev.properties)}


def main() -> int:
    serial = sys.argv[1]
    wait = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    nparts = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    ctx = pyudev.Context()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        subprocess.run(["/usr/bin/udevadm", "settle", "--timeout=5"], check=False)
        disks = [d for d in ctx.list_devices(subsystem="block", DEVTYPE="disk")
                 if d.properties.get("ID_SERIAL_SHORT") == serial
                 and d.properties.get("ID_BUS") == "usb"]
        if disks:
            disk = disks[0]
            parts = [describe(p) for p in ctx.list_devices(subsystem="block",
                                                             DEVTYPE="partition", parent=disk)]
            if len(parts) >= nparts:
                print(json.dumps({"disk": describe(disk),
                                  "partitions": sorted(parts, key=lambda p: str(p["name"]))}))
                return 0
        time.sleep(0.1)
    return 1


if __name__ == "__main__":
    sys.exit(main())
