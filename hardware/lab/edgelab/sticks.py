"""Stick images made on the host, without root, loop devices or device-mapper.

Each partition is formatted as a file of its own and then copied into a whole-disk image
that sfdisk partitioned: the host's mkfs tools and ``cryptsetup luksFormat`` all work on
plain files, so the image the guest sees is byte-for-byte what a real stick would carry.
"""

# ruff: noqa: S603 - fixed tool paths, argument lists
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LUKS_KEY", "Part", "make_stick", "sha256"]

MIB = 1 << 20
#: Key of every LUKS container the lab makes: the test hands it to cryptsetup in the guest.
LUKS_KEY = b"edgeguard-lab-luks-key"
SFDISK = "/usr/sbin/sfdisk"
MKFS = {
    "vfat": ["/usr/sbin/mkfs.vfat", "-F", "32", "-n", "EGLAB"],
    "ext4": ["/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "eglab", "-O", "^has_journal"],
    "ext4j": ["/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "eglab"],
    "exfat": ["/usr/sbin/mkfs.exfat", "-L", "EGLAB"],
}
MBR_TYPE = {"vfat": "c", "ext4": "83", "ext4j": "83", "exfat": "7", "luks": "83", "raw": "83"}
CRYPTSETUP = "/usr/sbin/cryptsetup"


@dataclass(frozen=True)
class Part:
    """One partition: ``fs`` is vfat, ext4 (no journal), ext4j, exfat, luks or raw."""

    fs: str
    size_mib: int


def _format(fs: str, path: Path, size_mib: int) -> None:
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    if fs == "luks":
        # pbkdf2 with few iterations: argon2's memory cost takes minutes in TCG.
        subprocess.run([CRYPTSETUP, "luksFormat", "--type", "luks2", "--batch-mode",
                        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                        "--key-file", "-", str(path)], input=LUKS_KEY, check=True,
                       capture_output=True)
    elif fs != "raw":
        subprocess.run([*MKFS[fs], str(path)], check=True, capture_output=True)


def make_stick(path: Path, parts: list[Part] | None = None, *, whole: str | None = None,
               size_mib: int = 64) -> Path:
    """Write a stick image: MBR ``parts`` (1 MiB aligned), or one filesystem on the
    ``whole`` disk (a "superfloppy", as many sticks ship)."""
    if whole is not None:
        _format(whole, path, size_mib)
        return path
    parts = parts or []
    total = 1 + sum(p.size_mib for p in parts) + 1
    with path.open("wb") as f:
        f.truncate(max(total, size_mib) * MIB)
    script = "label: dos\n" + "".join(f"size={p.size_mib}MiB, type={MBR_TYPE[p.fs]}\n"
                                      for p in parts)
    subprocess.run([SFDISK, "--quiet", str(path)], input=script.encode(), check=True,
                   capture_output=True)
    offset = 1
    for i, part in enumerate(parts):
        piece = path.with_name(f"{path.name}.p{i + 1}")
        _format(part.fs, piece, part.size_mib)
        with piece.open("rb") as src, path.open("r+b") as dst:
            dst.seek(offset * MIB)
            while chunk := src.read(MIB):
                dst.write(chunk)
        piece.unlink()
        offset += part.size_mib
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()
