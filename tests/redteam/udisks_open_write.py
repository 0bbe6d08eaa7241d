"""Open a block device *through udisks* and write to the descriptor it hands back.

Run with the system ``/usr/bin/python3`` (python3-dbus, which can receive a Unix file
descriptor; ``gdbus call`` cannot use one): ``udisks_open_write.py OBJECT METHOD [MODE]``
where METHOD is ``OpenDevice`` (with MODE ``rw``) or ``OpenForRestore``. Prints one JSON
line: ``{"dbus_error": name}`` when udisks refuses, ``{"errno": n}`` when the write fails,
``{"wrote": n}`` when it succeeds. The first 4 KiB are overwritten only in that last case.
"""

from __future__ import annotations

import json
import os
import sys

import dbus  # type: ignore[import-not-found]


def main(argv: list[str]) -> dict[str, object]:
    path, method, *args = argv
    block = dbus.Interface(dbus.SystemBus().get_object("org.freedesktop.UDisks2", path),
                           "org.freedesktop.UDisks2.Block")
    try:
        handle = getattr(block, method)(*args, dbus.Dictionary({}, signature="sv"))
    except dbus.DBusException as exc:
        return {"dbus_error": exc.get_dbus_name(), "message": exc.get_dbus_message()}
    fd = handle.take()
    try:
        wrote = os.write(fd, b"\xa5" * 4096)
        os.fsync(fd)
        return {"wrote": wrote}
    except OSError as exc:
        return {"errno": exc.errno, "message": exc.strerror}
    finally:
        os.close(fd)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
