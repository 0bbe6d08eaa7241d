"""Check that a built .deb's Python bytecode is used as installed (run by scripts/package.sh).

``python3 packaging/check_bytecode.py dist/edgeguard_<v>_<arch>.deb`` unpacks the package
(``dpkg-deb -x`` restores the archive's modification times, as installing does) and
checks, for every module of the ``edgeguard`` package, that a ``.pyc`` sits next to it
and that the interpreter running this script would accept it for that source: the same
magic number, and either the source's hash (hash-based ``.pyc``) or its modification
time and size (timestamp-based). A stale ``.pyc`` is not an error at run time, only a
silent cost: every start compiles the module again and, under a read-only ``/usr`` or
as a user, cannot write the result. dpkg-deb clamps every modification time in the
archive to ``SOURCE_DATE_EPOCH``, which once made all of them stale.

Run it with the interpreter the package targets (``/usr/bin/python3``): the magic
number is that interpreter's. Exit 0 when all are current, 1 (listing them) when not.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

#: Bits of a .pyc header's flags word (PEP 552).
HASH_BASED = 0b01


def problems(package: Path) -> list[str]:
    """What is wrong with the bytecode of every ``.py`` under ``package``."""
    found = []
    for source in sorted(package.rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists():
            found.append(f"{source}: no {cached.name}")
            continue
        header = cached.read_bytes()[:16]
        if header[:4] != importlib.util.MAGIC_NUMBER:
            found.append(f"{cached}: compiled for another Python")
            continue
        flags = int.from_bytes(header[4:8], "little")
        if flags & HASH_BASED:
            if header[8:16] != importlib.util.source_hash(source.read_bytes()):
                found.append(f"{cached}: the source's hash differs")
            continue
        stat = source.stat()
        mtime = int.from_bytes(header[8:12], "little")
        size = int.from_bytes(header[12:16], "little")
        if (mtime, size) != (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF):
            found.append(f"{cached}: the source's modification time or size differs")
    return found


def check_deb(deb: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["/usr/bin/dpkg-deb", "-x", str(deb), tmp], check=True)  # noqa: S603
        packages = sorted(Path(tmp).glob(
            "usr/lib/edgeguard/lib/python3*/site-packages/edgeguard"))
        if not packages:
            return [f"{deb}: no edgeguard package inside"]
        return [p.replace(tmp, "") for p in problems(packages[0])]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_bytecode.py PACKAGE.deb", file=sys.stderr)
        return 2
    found = check_deb(Path(argv[0]))
    for line in found:
        print(f"check_bytecode: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
