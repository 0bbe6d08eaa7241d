"""Build (or reuse) the systemd lab guest: Debian's kernel, a tiny busybox initramfs and
an ext4 root filesystem image with systemd as PID 1.

The initramfs guest (:mod:`edgelab.image`) has no init system and forgets everything at
power-off; installing edgeguard's Debian package needs the opposite: systemd to run its
units (Type=notify, watchdog, reload, journal) and a disk that keeps the audit trail and
the enablement across a reboot. So here the root is ``/dev/vda``, an ext4 image made
without root privileges inside it (``mkfs.ext4 -d``); the initramfs only loads
virtio_blk and ext4 and switches root to ``/sbin/init``.

What the guest holds: ``systemd/packages.txt`` (systemd, udev, python3 and every package
edgeguard's .deb Depends on, so ``apt-get install ./edgeguard_*.deb`` works offline), the
modules of ``modules.txt`` + ``systemd/modules.txt``, and the lab agent as a systemd
service on the virtio-serial port. No edgeguard: the test installs the package.

Cached by a content hash of the recipe (this file, both package and module lists, the
guest agent, ``systemd/*`` and the kernel and busybox versions apt resolves) next to the
initramfs image; only the newest of each kind is kept.
"""

# ruff: noqa: S603, S103 - fixed tool paths as argument lists; apt's _apt user must read the work dir
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import image
from .image import HERE, MIRRORS, SUITE

__all__ = ["SystemdImage", "build", "recipe_key"]

SD_DIR = HERE / "systemd"
MODULE_LISTS = ("modules.txt", "systemd/modules.txt")
#: What the initramfs loads before it can mount the root (plus their dependencies).
BOOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
DISK_SIZE = "1536M"
PREFIX = "sd-"  # cache directories of this kind
MKFS = "/usr/sbin/mkfs.ext4"
#: Units a test machine has no use for; masked so boot is quicker and quieter.
MASKED = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
          "e2scrub_reap.service", "fstrim.timer", "getty@tty1.service",
          "serial-getty@ttyS0.service", "systemd-timesyncd.service",
          "systemd-networkd-wait-online.service")
MACHINE_ID = "5e1ecaf0edc0de5e1ecaf0edc0de0001"  # fixed: the journal survives reboots


@dataclass(frozen=True)
class SystemdImage:
    """A built systemd guest: kernel, initramfs, root filesystem image (copy it before
    booting: the guest writes to it)."""

    key: str
    kernel: Path
    initrd: Path
    disk: Path
    kernel_version: str


def _busybox_version() -> str:
    pol = subprocess.run([image.APT_CACHE, "policy", "busybox-static"], check=True,
                         capture_output=True, text=True).stdout
    cand = re.search(r"Candidate: (\S+)", pol)
    return cand.group(1) if cand else "unknown"


def _recipe_files() -> list[Path]:
    return [Path(__file__).resolve(), Path(image.__file__).resolve(), HERE / "modules.txt",
            HERE / "guest" / "agent.py", *sorted(p for p in SD_DIR.iterdir() if p.is_file())]


def recipe_key() -> str:
    h = hashlib.sha256()
    for path in _recipe_files():
        h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes() + b"\0")
    pkg, ver = image._kernel_package()
    h.update(f"{pkg}={ver}\0busybox-static={_busybox_version()}\0".encode())
    return h.hexdigest()[:16]


def _rootfs(work: Path) -> Path:
    root = work / "root"
    argv = [image.MMDEBSTRAP, "--variant=minbase", "--mode=root", "--quiet",
            "--include=" + ",".join(image._list_file("systemd/packages.txt"))]
    argv += [f"--dpkgopt=path-exclude={p}" for p in image.EXCLUDES]
    argv += [f"--dpkgopt=path-include={image.KEEP_DOC}"]
    argv += [SUITE, str(root), *MIRRORS]
    image._run(argv)
    for junk in ("var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    return root


def _configure(root: Path) -> None:
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc/hostname").write_text("edgelab-sd\n")
    (root / "etc/machine-id").write_text(MACHINE_ID + "\n")
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)
    lib = root / "usr/lib/edgelab"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "guest" / "agent.py", lib / "agent.py")
    units = root / "etc/systemd/system"
    shutil.copy2(SD_DIR / "edgelab-agent.service", units / "edgelab-agent.service")
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "edgelab-agent.service").symlink_to("/etc/systemd/system/edgelab-agent.service")
    for unit in MASKED:
        link = units / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def _topological(moddir: Path, names: tuple[str, ...]) -> list[str]:
    """``names`` and their dependencies from modules.dep, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", Path(m).name).replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in names:
        if name in by_name:  # absent: built into this kernel
            visit(by_name[name])
    return order


def _initramfs(work: Path, root: Path, kver: str, out: Path) -> None:
    dl = work / "bb"
    dl.mkdir()
    os.chmod(dl, 0o777)
    image._run([image.APT_GET, "download", "-q", "busybox-static"], cwd=dl,
               stdout=subprocess.DEVNULL)
    tree = work / "bbx"
    image._run([image.DPKG_DEB, "-x", str(next(dl.glob("*.deb"))), str(tree)])
    ird = work / "initramfs"
    (ird / "bin").mkdir(parents=True)
    shutil.copy2(tree / "bin/busybox", ird / "bin/busybox")
    shutil.copy2(SD_DIR / "init", ird / "init")
    os.chmod(ird / "init", 0o755)
    moddir = root / "lib/modules" / kver
    order = _topological(moddir, BOOT_MODULES)
    for rel in order:
        dst = ird / "lib/modules" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, dst)
    (ird / "modules.order").write_text("".join(f"{rel}\n" for rel in order))
    image._pack(ird, out)


def build(*, force: bool = False, log: bool = True) -> SystemdImage:
    """Return the cached systemd guest for the current recipe, building it if needed."""
    key = recipe_key()
    base = image.cache_root()
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"{PREFIX}{key}"
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force and final.exists():
            shutil.rmtree(final)
        if not (final / "manifest.json").exists():
            if log:
                print(f"edgelab: building systemd guest image {key} in {base}", flush=True)
            work = Path(tempfile.mkdtemp(prefix="build-", dir=base))
            os.chmod(work, 0o755)
            try:
                ktree, kver = image._fetch_kernel(work)
                root = _rootfs(work)
                image._install_modules(ktree, kver, root, MODULE_LISTS)
                _configure(root)
                out = work / "out"
                out.mkdir()
                shutil.copy2(ktree / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
                _initramfs(work, root, kver, out / "initrd.img")
                image._run([MKFS, "-q", "-F", "-L", "edgelab-sd", "-d", str(root),
                            str(out / "root.ext4"), DISK_SIZE])
                (out / "manifest.json").write_text(json.dumps({
                    "key": key, "kernel_version": kver, "suite": SUITE,
                    "packages": image._list_file("systemd/packages.txt"),
                }, indent=2) + "\n")
                for old in base.glob(f"{PREFIX}*"):
                    shutil.rmtree(old)
                out.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    meta = json.loads((final / "manifest.json").read_text())
    return SystemdImage(key=key, kernel=final / "vmlinuz", initrd=final / "initrd.img",
                        disk=final / "root.ext4", kernel_version=meta["kernel_version"])
