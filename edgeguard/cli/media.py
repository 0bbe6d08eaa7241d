"""``edgeguard media list|allow|replay``: removable media on this machine.

``list`` and ``allow`` ask the running daemon over its control socket; ``replay``
runs a recorded uevent sequence through the same engine against a simulated kernel
(no daemon, no root), printing the audit records it would write.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeguard.audit.sink import MemorySink
from edgeguard.cli._common import (
    EXIT_NO_DAEMON,
    EXIT_REFUSED,
    add_policy_options,
    add_socket_option,
    call_daemon,
    command_group,
    ecs_row,
    policy_files,
    print_json_lines,
    print_table,
    report_control_error,
)
from edgeguard.clock import SystemClock
from edgeguard.decision import DecisionEngine, effective_mode
from edgeguard.ecs import nest, record_fields
from edgeguard.findings import Area
from edgeguard.fsutil import atomic_write
from edgeguard.media.register import (
    RegisterError,
    Registration,
    drop_in_name,
    exempt_rule,
    trust_entries_yaml,
    trust_entry_yaml,
)
from edgeguard.media.uevent import BlockDevice
from edgeguard.policy.load import PROFILES, PolicyError, default_layers, load_policy
from edgeguard.policy.types import Duration

__all__ = ["register"]

LIST_COLUMNS = ["volume.device_name", "edgeguard.media.kind", "volume.vendor_id",
                "volume.product_id", "volume.serial_number", "volume.file_system_type",
                "edgeguard.media.encryption",
                "edgeguard.media.verdict", "volume.writable", "edgeguard.media.reason"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _media, msub = command_group(sub, "media", "USB storage: list, temporary allow, replay")

    lst = msub.add_parser(
        "list", help="present USB storage: identity, encryption, verdict, why",
        description="List the USB storage the running daemon sees: identity, encryption, "
                    "verdict, whether it is writable and why. Exit 0, or 3 when no daemon "
                    "answers.")
    add_socket_option(lst)
    lst.add_argument("--json", action="store_true", help="one JSON object per device (ECS)")
    lst.set_defaults(func=_list)

    allow = msub.add_parser("allow", help="let one device be written for a while (root only)")
    add_socket_option(allow)
    allow.add_argument("device", help="/dev name of the stick or one of its partitions")
    allow.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                       help="how long, with a unit: 30m, 2h")
    allow.add_argument("--reason", required=True, help="why (goes into the audit record)")
    allow.set_defaults(func=_allow)

    reg = msub.add_parser(
        "register", help="add a plugged trust device to the register (a policy drop-in)",
        description="Write /etc/edgeguard/policy.d/50-media-ID.yaml with the vendor id, "
                    "product id, serial and size of the plugged device, check the whole "
                    "policy with it (and --profile, the daemon's), and ask a running daemon "
                    "to reload. Exit 0 registered and reloaded; 1 the policy does not check "
                    "or the daemon refused the reload (the drop-in is restored or removed); "
                    "2 a device that cannot be registered; 3 written but no daemon answered "
                    "(it reads the register when it starts).")
    reg.add_argument("device", help="/dev name of the device or one of its partitions")
    reg.add_argument("--id", dest="device_id", required=True, help="register id, e.g. IT-0043")
    reg.add_argument("--owner", help="holder, goes into the description")
    reg.add_argument("--print", dest="print_only", action="store_true",
                     help="print the YAML instead of writing it")
    reg.add_argument("--etc-dir", type=Path, default=Path("/etc/edgeguard"),
                     help="where policy.yaml and policy.d/ live (default /etc/edgeguard)")
    reg.add_argument("--profile", choices=PROFILES, default=None,
                     help="the shipped profile the daemon runs with (checked against it)")
    add_socket_option(reg)
    reg.set_defaults(func=_register)

    gen = msub.add_parser(
        "generate", help="print a register drop-in for every removable medium present",
        description="Like `usbguard generate-policy`: print a policy drop-in registering "
                    "every removable disk plugged in now that reports a serial (ids PREFIX "
                    "+ 0001, 0002, ...), for a kiosk's or a class set's register. Review "
                    "it, save it under /etc/edgeguard/policy.d/, `edgeguard check`, reload. "
                    "Exit 0, or 2 when no device can be registered.")
    gen.add_argument("--id-prefix", default="DEV-", help="register id prefix (default DEV-)")
    gen.add_argument("--owner", help="holder, goes into every description")
    gen.set_defaults(func=_generate)

    exe = msub.add_parser(
        "exempt", help="exempt a removable system disk on its port (a udev rule)",
        description="Print (or with --write, install) the udev rule that exempts the device "
                    "from the read-only rule, keyed on its physical port (ID_PATH) and "
                    "partition-table UUID: a clone on another port is not exempt. Exit 0, or "
                    "2 for a device without a port or partition table.")
    exe.add_argument("device", help="/dev name of the disk or one of its partitions")
    exe.add_argument("--reason", required=True, help="why (written into the rule file)")
    exe.add_argument("--write", metavar="FILE", type=Path, default=None,
                     help="append to FILE, e.g. /etc/udev/rules.d/60-zz-edgeguard-exempt.rules")
    exe.set_defaults(func=_exempt)

    rep = msub.add_parser(
        "replay", help="run recorded uevents through the engine (no root)",
        description="Run a recorded uevent sequence through the media engine against a "
                    "simulated kernel and print the audit records it would write. Exit 0, "
                    "or 2 for a recording or policy that cannot be read.")
    add_policy_options(rep)
    rep.add_argument("recording", type=Path, help="JSON file as in tests/data/uevents/")
    rep.add_argument("--json", action="store_true", help="raw ECS records")
    rep.set_defaults(func=_replay)


def _list(args: argparse.Namespace) -> int:
    rows: list[Mapping[str, Any]] = call_daemon(args, "media.list")
    if args.json:
        print_json_lines(ecs_row("usb-storage-state", row, event_type=("info",))
                         for row in rows)
    elif rows:
        print_table(rows, LIST_COLUMNS)
    else:
        print("no removable media present")
    return 0


def _plugged(devnode: str) -> BlockDevice:
    from edgeguard.media.source import disk_properties  # noqa: PLC0415 - needs libudev
    from edgeguard.media.uevent import MalformedUevent, parse_uevent  # noqa: PLC0415

    try:
        return parse_uevent(disk_properties(devnode)).device
    except (ValueError, MalformedUevent) as exc:
        raise RegisterError(str(exc)) from None


def _register(args: argparse.Namespace) -> int:
    try:
        name = drop_in_name(args.device_id)
        text = trust_entry_yaml(_plugged(args.device),
                                Registration(args.device_id, args.owner))
    except RegisterError as exc:
        print(f"edgeguard media register: {exc}", file=sys.stderr)
        return 2
    if args.print_only:
        sys.stdout.write(text)
        return 0
    drop_in = args.etc_dir / "policy.d"
    target = drop_in / name
    drop_in.mkdir(mode=0o755, parents=True, exist_ok=True)
    old = target.read_bytes() if target.exists() else None
    atomic_write(target, text.encode(), mode=0o644)
    try:
        load_policy(default_layers(args.etc_dir), args.profile)
    except PolicyError as exc:
        print(f"edgeguard media register: the policy with {target} does not check; "
              f"{_restore(target, old)} it:\n{exc}", file=sys.stderr)
        return 1
    print(f"registered {args.device} as {args.device_id}: {target}")
    from edgeguard.daemon.control import ControlError, request  # noqa: PLC0415

    try:
        request(args.socket, "reload", None, timeout=60)
    except ControlError as exc:
        code = report_control_error(exc)
        if code == EXIT_NO_DAEMON:
            print("no daemon reloaded; it reads the register when it starts", file=sys.stderr)
            return code
        # a drop-in the daemon refuses would block every later reload
        print(f"edgeguard media register: the daemon refused the policy with {target}; "
              f"{_restore(target, old)} it", file=sys.stderr)
        return EXIT_REFUSED
    print("daemon reloaded")
    return 0


def _restore(target: Path, old: bytes | None) -> str:
    """Put ``target`` back as it was before ``media register`` wrote it."""
    if old is None:
        target.unlink(missing_ok=True)
        return "removed"
    atomic_write(target, old, mode=0o644)
    return "restored"


def _generate(args: argparse.Namespace) -> int:
    from edgeguard.media.source import present_disks  # noqa: PLC0415 - needs libudev
    from edgeguard.media.uevent import MalformedUevent, parse_uevent  # noqa: PLC0415

    entries: list[tuple[BlockDevice, Registration]] = []
    for props in present_disks():
        try:
            disk = parse_uevent(props).device
        except MalformedUevent:
            continue
        if not disk.protected or disk.exempt or disk.identity is None:
            continue
        reg = Registration(f"{args.id_prefix}{len(entries) + 1:04d}", args.owner)
        try:
            trust_entries_yaml([(disk, reg)], "check")
        except RegisterError as exc:
            print(f"edgeguard media generate: {disk.devnode} skipped: {exc}", file=sys.stderr)
            continue
        entries.append((disk, reg))
    if not entries:
        print("edgeguard media generate: no removable disk with a serial present",
              file=sys.stderr)
        return 2
    sys.stdout.write(trust_entries_yaml(entries, "edgeguard media generate"))
    return 0


def _exempt(args: argparse.Namespace) -> int:
    try:
        text = exempt_rule(_plugged(args.device), args.reason)
    except RegisterError as exc:
        print(f"edgeguard media exempt: {exc}", file=sys.stderr)
        return 2
    if args.write is None:
        sys.stdout.write(text)
        return 0
    with args.write.open("a", encoding="utf-8") as out:
        out.write(text)
    print(f"appended to {args.write}; run `udevadm control --reload` and re-plug or "
          "`udevadm trigger --action=change --subsystem-match=block`")
    return 0


def _allow(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("edgeguard media allow: only root may grant write access", file=sys.stderr)
        return 1
    try:
        seconds = float(Duration.parse(args.duration))
    except ValueError as exc:
        print(f"edgeguard media allow: --for: {exc}", file=sys.stderr)
        return 2
    claimed = os.environ.get("SUDO_USER", "")
    result = call_daemon(args, "media.allow", {"device": args.device, "seconds": seconds,
                                               "reason": args.reason, "requested_by": claimed})
    print(f"{result['device']} writable until {result['until']} "
          f"(granted by {result['by']}: {result['reason']})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    # Imported here: the replay machinery is only needed by this subcommand.
    from edgeguard.media.allow import AllowStore  # noqa: PLC0415
    from edgeguard.media.engine import MediaEngine  # noqa: PLC0415
    from edgeguard.media.replay import SimulatedKernel, replay  # noqa: PLC0415
    from edgeguard.media.service import load_catalogue  # noqa: PLC0415
    from edgeguard.media.source import load_recording  # noqa: PLC0415

    try:
        policy = load_policy(policy_files(args), args.profile).policy
        bursts = load_recording(args.recording)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"edgeguard media replay: {exc}", file=sys.stderr)
        return 2
    catalogue, error = load_catalogue(policy.media)
    if error:
        print(f"edgeguard media replay: hardware catalogue ignored: {error}", file=sys.stderr)
    sink = MemorySink()
    kernel = SimulatedKernel()
    with tempfile.TemporaryDirectory() as state:
        allows = AllowStore(Path(state) / "allows.json", SystemClock())
        # a replay never acts: monitor mode whatever the policy's sections and rules say
        mode = effective_mode(policy, Area.MEDIA, force_monitor=True)
        decisions = DecisionEngine(policy, SystemClock(), force_monitor=True)
        engine = MediaEngine(config=policy.media, mode=mode,
                             catalogue=catalogue, allows=allows, block=kernel, audit=sink,
                             clock=SystemClock(), decisions=decisions)
        replay(engine, kernel, bursts)
    records = [record_fields(r, r.timestamp or 0.0, "replay") for r in sink.records]
    if args.json:
        print_json_lines(nest(r) for r in records)
    else:
        for r in records:
            print(f"{r['event.action']:<22} {r['event.outcome']:<8} {r['message']}")
    counters = engine.counters.as_dict()
    print("counters: " + "  ".join(f"{k} {v}" for k, v in counters.items()), file=sys.stderr)
    return 0
