"""``edgeguard kiosk devices``: every USB device, what it offers and the kiosk verdict.

By default the running daemon answers (its last verdict per device, ``kiosk.devices``).
``--offline`` judges what sysfs shows now with the policy on disk, without a daemon:
useful before enabling the kiosk profile (which devices would be refused?) and when the
daemon is down (nothing is written, the boot set is only read).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeguard.cli._common import (
    add_policy_options,
    add_socket_option,
    call_daemon,
    command_group,
    policy_files,
    print_json_lines,
    print_table,
)
from edgeguard.ecs import nest
from edgeguard.kiosk.assess import assess
from edgeguard.kiosk.bootset import BootSet, read_boot_id
from edgeguard.kiosk.evidence import device_row
from edgeguard.kiosk.sysfs import UsbSysfs
from edgeguard.policy.load import PolicyError, load_policy

__all__ = ["register"]

COLUMNS = ["edgeguard.usb.bus_path", "device.model.identifier", "device.model.name",
           "edgeguard.usb.interface_classes", "edgeguard.usb.authorized",
           "edgeguard.usb.verdict", "edgeguard.usb.reason"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _kiosk, ksub = command_group(sub, "kiosk", "kiosk lockdown: USB device authorisation")
    dev = ksub.add_parser(
        "devices", help="USB devices, their interface classes and verdicts",
        description="List every USB device with its interface classes and the kiosk verdict. "
                    "Exit 0, 2 for a bad policy, 3 when no daemon answers.")
    add_socket_option(dev)
    add_policy_options(dev)
    dev.add_argument("--offline", action="store_true",
                     help="judge sysfs now with the policy on disk instead of asking the daemon")
    dev.add_argument("--sysfs-root", type=Path, metavar="DIR",
                     help="with --offline: read DIR/bus/usb/devices (default: kiosk.sysfs_root)")
    dev.add_argument("--state-dir", type=Path, metavar="DIR",
                     help="with --offline: where the boot set is (default: the policy's)")
    dev.add_argument("--json", action="store_true", help="one JSON object per device (ECS)")
    dev.set_defaults(func=_devices)


def _offline(args: argparse.Namespace) -> list[dict[str, Any]]:
    policy = load_policy(policy_files(args), args.profile).policy
    sysfs = UsbSysfs(args.sysfs_root or Path(policy.kiosk.sysfs_root))
    state = args.state_dir or Path(policy.daemon.state_directory)
    boot = BootSet.load(state, read_boot_id())
    rows = []
    for name in sysfs.device_names():
        try:
            dev = sysfs.read(name)
        except OSError:
            continue
        rows.append(dict(device_row(dev, assess(dev, policy.kiosk, boot))))
    return rows


def _devices(args: argparse.Namespace) -> int:
    if args.offline:
        try:
            rows: list[Mapping[str, Any]] = list(_offline(args))
        except PolicyError as exc:
            for issue in exc.issues:
                print(f"edgeguard: {issue}", file=sys.stderr)
            return 2
    else:
        rows = call_daemon(args, "kiosk.devices")
    if args.json:
        print_json_lines(nest(row) for row in rows)
    elif rows:
        print_table([{k: ",".join(v) if isinstance(v, list | tuple) else v
                      for k, v in row.items()} for row in rows], COLUMNS)
    else:
        print("no USB devices")
    return 0
