"""Run the lab by hand.

  PYTHONPATH=hardware/lab python3 -m edgelab build [--force]   build/reuse the guest image
  PYTHONPATH=hardware/lab python3 -m edgelab shell             boot; each stdin line runs
                                                               in the guest's /bin/sh
  PYTHONPATH=hardware/lab python3 -m edgelab run -- CMD...     boot, run one command, stop
  PYTHONPATH=hardware/lab python3 -m edgelab record-beacons DIR  (re)record IE fixtures
  PYTHONPATH=hardware/lab python3 -m edgelab record-uevents DIR  (re)record uevent fixtures
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import image
from .vm import LabVM

ROOT = Path(__file__).resolve().parents[3]


def boot(workdir: Path) -> LabVM:
    img = image.build()
    vm = LabVM(img, share=ROOT, workdir=workdir)
    vm.start()
    print(f"edgelab: guest up in {vm.boot_seconds:.1f} s (console: {vm.console_log})",
          file=sys.stderr)
    return vm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgelab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--force", action="store_true")
    sub.add_parser("shell")
    r = sub.add_parser("run")
    r.add_argument("command", nargs=argparse.REMAINDER)
    for name in ("record-beacons", "record-uevents"):
        rec = sub.add_parser(name)
        rec.add_argument("outdir", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(image.build(force=args.force))
        return 0
    with tempfile.TemporaryDirectory(prefix="edgelab-") as tmp:
        vm = boot(Path(tmp))
        try:
            if args.cmd == "run":
                cmd = [c for c in args.command if c != "--"]
                res = vm.run(*cmd, timeout=600, check=False)
                sys.stdout.write(res.stdout)
                sys.stderr.write(res.stderr)
                return res.rc
            if args.cmd == "shell":
                for line in sys.stdin:
                    res = vm.sh(line, timeout=600, check=False)
                    sys.stdout.write(res.stdout + res.stderr + f"[rc={res.rc}]\n")
                    sys.stdout.flush()
                return 0
            from .record import record_beacons, record_uevents  # noqa: PLC0415

            if args.cmd == "record-beacons":
                record_beacons(vm, args.outdir)
            else:
                record_uevents(vm, args.outdir)
            return 0
        finally:
            vm.stop()


if __name__ == "__main__":
    raise SystemExit(main())
