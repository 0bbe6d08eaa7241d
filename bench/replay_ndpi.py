"""Whole-process replay throughput: edgeguard (compiled and pure) vs nDPI's ndpiReader
and nfstream, side by side in one run, start-up included.

    PYTHONPATH=. .venv/bin/python bench/replay_ndpi.py [--mix issue23 school] [--repeat 3]
        [--ndpi-reader PATH] [FILE.pcap ...]

Each tool replays each capture ``--repeat`` times, the tools taking turns (so a busy
neighbour slows all of them alike); the median wall time is reported with packets/s,
the ratio to ndpiReader and the peak RSS (wait4). The captures are bench/replay_mix.py's
seeded mixes (cached in /tmp) unless files are given. ``edgeguard replay --json`` of the
compiled and the pure build must be byte-identical; the table says so per file.

ndpiReader is built from nDPI's source at bench time and never vendored: Debian's source
package (``apt-get source ndpi`` through a private deb-src list in /tmp, no change to the
system's apt configuration), then ``autogen.sh`` and ``make`` (needs autoconf, automake,
libtool, libpcap-dev, libjson-c-dev, libgcrypt). If that fails, ``/usr/bin/ndpiReader``
from Debian's ``libndpi-bin`` is used and the table says so. It runs as
``ndpiReader -q -i FILE`` (one thread, nDPI's defaults).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replay_mix import CACHE, ensure  # noqa: E402
from edgeguard.net.pcapfile import read_capture  # noqa: E402

NDPI_DIR = CACHE / "ndpi-src"


@dataclass
class Tool:
    name: str
    argv: list[str]  # FILE appended
    env: dict[str, str]


def _apt(*args: str) -> list[str]:
    lists = NDPI_DIR / "apt-lists"
    return ["apt-get", "-q", "-o", f"Dir::Etc::SourceList={NDPI_DIR / 'deb-src.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"Dir::State::Lists={lists}",
            *args]


def build_ndpi_reader() -> tuple[Path | None, str]:
    """ndpiReader built from Debian's nDPI source (cached), else Debian's binary."""
    built = next(NDPI_DIR.glob("nDPI-*/example/ndpiReader"), None)
    if built is not None:
        return built, "built from Debian's nDPI source package"
    try:
        (NDPI_DIR / "apt-lists" / "partial").mkdir(parents=True, exist_ok=True)
        (NDPI_DIR / "deb-src.list").write_text(
            "deb-src http://deb.debian.org/debian bookworm main\n")
        subprocess.run(_apt("update"), check=True, capture_output=True)
        # (the Debian patch tarball may be missing from a snapshot mirror: the upstream
        # tarball is all we need, so the exit status is not trusted, the file is)
        subprocess.run(_apt("source", "--download-only", "ndpi"), cwd=NDPI_DIR,
                       capture_output=True, check=False)
        tarball = next(NDPI_DIR.glob("ndpi_*.orig.tar.gz"))
        subprocess.run(["tar", "xzf", tarball.name, "--exclude=*/tests/pcap/*",
                        "--exclude=*/tests/result/*"], cwd=NDPI_DIR, check=True)
        src = next(NDPI_DIR.glob("nDPI-*"))
        for step in (["./autogen.sh"], ["make", "-C", "src/lib", "-j2"],
                     ["make", "-C", "example", "-j2"]):
            subprocess.run(step, cwd=src, check=True, capture_output=True)
        return src / "example" / "ndpiReader", "built from Debian's nDPI source package"
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        binary = shutil.which("ndpiReader")
        why = f"source build failed ({type(exc).__name__})"
        if binary:
            return Path(binary), f"{why}: Debian's libndpi-bin binary"
        return None, f"{why}, no ndpiReader installed"


def tools(reader: Path | None) -> list[Tool]:
    edgeguard = str(ROOT / ".venv" / "bin" / "edgeguard")
    base = {k: v for k, v in os.environ.items() if k != "EDGEGUARD_PURE"}
    out = [Tool("edgeguard compiled", [edgeguard, "replay", "--json"], base),
           Tool("edgeguard pure", [edgeguard, "replay", "--json"],
                {**base, "EDGEGUARD_PURE": "1"})]
    if reader is not None:
        out.append(Tool("ndpiReader", [str(reader), "-q", "-i"], base))
    py = str(ROOT / ".venv" / "bin" / "python")
    probe = subprocess.run([py, "-c", "import nfstream"], capture_output=True, check=False)
    if probe.returncode == 0:
        out.append(Tool("nfstream", [py, "-c", (
            "import sys; from nfstream import NFStreamer; "
            "print(sum(f.bidirectional_packets for f in NFStreamer(source=sys.argv[1])))")],
            base))
    return out


def run_once(tool: Tool, path: Path) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS (KiB) and stdout of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen([*tool.argv, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=tool.env)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # edgeguard: 1 = findings
        raise RuntimeError(f"{tool.name} exited {proc.returncode} on {path}")
    return seconds, usage.ru_maxrss, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--mix", nargs="*", default=["issue23", "school"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ndpi-reader", type=Path)
    args = parser.parse_args(argv)
    reader, origin = ((args.ndpi_reader, "given") if args.ndpi_reader
                      else build_ndpi_reader())
    files = args.files or [ensure(name) for name in args.mix]
    chosen = tools(reader)
    print(f"ndpiReader: {reader} ({origin}); load average {os.getloadavg()[0]:.1f}; "
          f"median of {args.repeat}, whole processes")
    print(f"{'file':14} {'packets':>8} {'tool':20} {'median s':>9} {'packets/s':>10} "
          f"{'vs nDPI':>8} {'peak RSS':>9}")
    for path in files:
        packets = sum(1 for _ in read_capture(path))
        times: dict[str, list[float]] = {t.name: [] for t in chosen}
        rss: dict[str, int] = {}
        outputs: dict[str, bytes] = {}
        for _ in range(args.repeat):
            for tool in chosen:  # taking turns: the same load for every tool
                seconds, peak, out = run_once(tool, path)
                times[tool.name].append(seconds)
                rss[tool.name] = max(rss.get(tool.name, 0), peak)
                outputs[tool.name] = out
        ndpi = statistics.median(times["ndpiReader"]) if "ndpiReader" in times else None
        for tool in chosen:
            med = statistics.median(times[tool.name])
            ratio = f"{ndpi / med:.2f}x" if ndpi else "n/a"
            print(f"{path.name:14} {packets:>8} {tool.name:20} {med:>9.2f} "
                  f"{packets / med:>10,.0f} {ratio:>8} {rss[tool.name] / 1024:>7.0f} MB")
        same = outputs["edgeguard compiled"] == outputs["edgeguard pure"]
        lines = outputs["edgeguard compiled"].count(b"\n")
        print(f"{path.name:14} findings compiled vs pure: "
              f"{'byte-identical' if same else 'DIFFER'} ({lines} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
