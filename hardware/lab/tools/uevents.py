"""Guest tool: record udev events (after rules, as the daemon sees them) as JSON lines.

``python3 /src/hardware/lab/tools/uevents.py OUT SUBSYSTEM...`` writes one line per event:
``{"t": seconds since start (monotonic), "properties": {...}}`` until SIGTERM. A line
``{"ready": true}`` first tells the host the monitor is listening.
"""

import json
import signal
import sys
import time

import pyudev


def main() -> int:
    out = open(sys.argv[1], "w", buffering=1)  # noqa: SIM115 - closed by exiting
    ctx = pyudev.Context()
    mon = pyudev.Monitor.from_netlink(ctx, source="udev")
    for sub in sys.argv[2:]:
        mon.filter_by(sub)
    mon.start()
    running = True

    def stop(_sig: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    t0 = time.monotonic()
    out.write(json.dumps({"ready": True}) + "\n")
    while running:
        dev = mon.poll(timeout=0.2)
        if dev is not None:
            out.write(json.dumps({"t": round(time.monotonic() - t0, 3),
                                  "properties": dict(dev.properties)}) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
