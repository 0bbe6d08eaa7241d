"""Loop-device "USB sticks" and a standalone udevd, for tests and the latency benchmark.

This host has no USB bus and a kernel without partition-table parsers, so:

* a stick is an image file ``egm-stick-<name>.img`` with a ``.usb`` identity file next
  to it; the test-only rule ``tests/data/media/59-edgeguard-test-usb.rules`` imports
  that identity for the loop device, and the *shipped* ``rules/61-edgeguard-media.rules``
  (copied unchanged) does the rest;
* partitions are added from the image's partition table with ``partx -a`` (BLKPG
  ioctls), which makes real partition block devices with real ``add`` uevents.

Everything created is removed again: loop devices detached, their sticky read-only flag
cleared (BLKROSET outlives a detach), rules files removed, our udevd killed by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import host_processes, terminate

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_RULE = ROOT / "rules" / "61-edgeguard-media.rules"
TEST_RULE = ROOT / "tests" / "data" / "media" / "59-edgeguard-test-usb.rules"
RULES_DIR = Path("/run/udev/rules.d")
UDEVD = "/lib/systemd/systemd-udevd"
UDEVADM = "/usr/bin/udevadm"
SECTOR = 512

FS_TOOLS = {
    "vfat": ["/usr/sbin/mkfs.vfat", "-n", "EGMSTICK"],
    "exfat": ["/usr/sbin/mkfs.exfat", "-L", "EGMSTICK"],
    "ext4": ["/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "EGMSTICK"],
    "ntfs": ["/usr/sbin/mkfs.ntfs", "-q", "-F", "-Q", "-L", "EGMSTICK"],
}
LUKS_KEY = b"edgeguard-test-key"


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout)


def _udevd_pids() -> list[int]:
    return host_processes("systemd-udevd", "udevd")


@contextlib.contextmanager
def udevd_with_rules() -> Iterator[None]:
    """Run a udevd (ours, unless one already runs) with the shipped + test rules."""
    RULES_DIR.mkdir(parents=True, exist_ok=True)
    installed = []
    for src in (TEST_RULE, SHIPPED_RULE):
        dst = RULES_DIR / src.name
        shutil.copyfile(src, dst)
        installed.append(dst)
    proc = None
    if not _udevd_pids():
        proc = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while run(UDEVADM, "control", "--ping", check=False).returncode != 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("systemd-udevd did not start")
            time.sleep(0.05)
    try:
        run(UDEVADM, "control", "--reload")
        yield
    finally:
        for path in installed:
            path.unlink(missing_ok=True)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run(UDEVADM, "control", "--reload", check=False)
        terminate(proc, timeout=10)


def settle() -> None:
    run(UDEVADM, "settle", "--timeout=30", check=False)


def make_fs(path: Path, kind: str, size: int) -> None:
    """A filesystem (or LUKS container) image file of ``size`` bytes."""
    with path.open("wb") as f:
        f.truncate(size)
    if kind in FS_TOOLS:
        run(*FS_TOOLS[kind], str(path))
    elif kind in ("luks1", "luks2"):
        key = path.with_suffix(".key")
        key.write_bytes(LUKS_KEY)
        run("/usr/sbin/cryptsetup", "luksFormat", "-q", "--type", kind, "--pbkdf-force-iterations",
            "1000", *(["--pbkdf", "pbkdf2"] if kind == "luks2" else []),
            "--key-file", str(key), str(path))
        key.unlink()
    elif kind != "raw":
        raise ValueError(kind)


@dataclass
class StickSpec:
    """What to build: a partition layout (kinds, each ``part_mib``) or one whole-disk fs."""

    name: str
    partitions: Sequence[str] = ("vfat",)
    whole_disk: str | None = None
    part_mib: int = 24
    vendor_id: str = "0951"
    product_id: str = "1666"
    serial: str = "EGM0001"
    extra_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Stick:
    image: Path
    loop: str  # loop3
    partitions: list[str]

    @property
    def nodes(self) -> list[str]:
        return [self.loop, *self.partitions]

    def sha256(self) -> str:
        return hashlib.sha256(self.image.read_bytes()).hexdigest()


def build_image(directory: Path, spec: StickSpec) -> Path:
    image = directory / f"egm-stick-{spec.name}.img"
    ids = {"ID_BUS": "usb", "ID_VENDOR_ID": spec.vendor_id, "ID_MODEL_ID": spec.product_id,
           "ID_SERIAL_SHORT": spec.serial, "ID_VENDOR": "EdgeguardTest",
           "ID_MODEL": f"Stick_{spec.name}", **spec.extra_ids}
    Path(f"{image}.usb").write_text("".join(f"{k}={v}\n" for k, v in ids.items()))
    if spec.whole_disk is not None:
        make_fs(image, spec.whole_disk, spec.part_mib * 2**20)
        return image
    part = spec.part_mib * 2**20
    total = 2**20 + part * len(spec.partitions) + 2**20
    with image.open("wb") as f:
        f.truncate(total)
    table = "label: dos\n" + "".join(f",{spec.part_mib}M,83\n" for _ in spec.partitions)
    subprocess.run(["/usr/sbin/sfdisk", "-q", str(image)], input=table, text=True, check=True,
                   capture_output=True)
    for index, kind in enumerate(spec.partitions):
        piece = directory / f"part-{spec.name}-{index}.img"
        make_fs(piece, kind, part)
        with image.open("r+b") as out:
            out.seek(2**20 + index * part)
            out.write(piece.read_bytes())
        piece.unlink()
    return image


def attach(image: Path, partitions: int) -> Stick:
    """losetup + partx -a; the udev rule has run when this returns (settled)."""
    dev = run("/usr/sbin/losetup", "--find", "--show", str(image)).stdout.strip()
    name = Path(dev).name
    if partitions:
        run("/usr/bin/partx", "-a", dev)
    settle()
    return Stick(image, name, [f"{name}p{i + 1}" for i in range(partitions)])


def detach(stick: Stick) -> None:
    dev = f"/dev/{stick.loop}"
    settle()
    # Partitions added with BLKPG outlive LOOP_CLR_FD (no partscan flag): delete them.
    for _ in range(50):  # a FUSE filesystem may hold a partition a moment after umount
        if not any(Path(f"/sys/block/{stick.loop}/{p}").exists() for p in stick.partitions):
            break
        run("/usr/bin/partx", "-d", dev, check=False)
        time.sleep(0.1)
    backing = Path(f"/sys/block/{stick.loop}/loop/backing_file")
    for _ in range(50):
        run("/usr/sbin/losetup", "-d", dev, check=False)
        settle()
        if not backing.exists():
            break
        time.sleep(0.1)
    # BLKROSET is sticky on the loop device; leave it as we found it for the next user
    # (re-check: a late udev worker or daemon action could set it again).
    for _ in range(20):
        run("/usr/sbin/blockdev", "--setrw", dev, check=False)
        settle()
        if not sysfs_ro(stick.loop):
            break
        time.sleep(0.1)


def sysfs_ro(name: str) -> bool:
    return Path(f"/sys/class/block/{name}/ro").read_text().strip() == "1"


def blkroget(name: str) -> bool:
    fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return bool(struct.unpack("i", fcntl.ioctl(fd, 0x125E, struct.pack("i", 0)))[0])
    finally:
        os.close(fd)
