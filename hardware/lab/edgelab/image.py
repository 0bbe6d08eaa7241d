"""Build (or reuse) the lab guest: Debian's kernel plus an initramfs holding a whole
minimal Debian userland.

Why an initramfs and not a disk image: the guest never needs to persist anything, an
initramfs boots with no block device of its own (so every block device the guest sees is a
stick the test plugged), and it is one file we can cache by content hash.

The cache key covers everything that shapes the image: this file, the package and module
lists, the guest files, the kernel package version apt resolves, and the versions of
edgeguard's runtime dependencies copied in from the host's Python. CI therefore builds
once per run (or once per machine when the cache survives) and a change to the recipe
rebuilds automatically.
"""

# ruff: noqa: S603, S103 - fixed tool paths as argument lists; apt's _apt user must read the work dir
from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GuestImage", "build", "cache_root", "recipe_key"]

HERE = Path(__file__).resolve().parent.parent  # hardware/lab
TREE = HERE.parent.parent  # the working tree
SITE = "usr/local/lib/python3.11/dist-packages"  # ahead of Debian's dist-packages
GUEST_DIR = HERE / "guest"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Everything the guest never reads; keeps the initramfs (and its unpack time in TCG) small.
EXCLUDES = (
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*", "/usr/share/zoneinfo/*", "/usr/share/i18n/*",
)
KEEP_DOC = "/usr/share/doc/*/copyright"
APT_GET = "/usr/bin/apt-get"
APT_CACHE = "/usr/bin/apt-cache"
DPKG_DEB = "/usr/bin/dpkg-deb"
MMDEBSTRAP = "/usr/bin/mmdebstrap"
DEPMOD = "/usr/sbin/depmod"
CPIO = "/usr/bin/cpio"
ZSTD = "/usr/bin/zstd"


@dataclass(frozen=True)
class GuestImage:
    """A built guest: what QEMU needs to boot it, and what went into it."""

    key: str
    kernel: Path
    initrd: Path
    kernel_version: str

    @property
    def manifest(self) -> Path:
        return self.kernel.parent / "manifest.json"


def cache_root() -> Path:
    """Outside the git tree: $EDGEGUARD_LAB_CACHE, /var/cache/edgeguard-lab as root,
    else ~/.cache/edgeguard-lab."""
    env = os.environ.get("EDGEGUARD_LAB_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/edgeguard-lab")
    return Path.home() / ".cache" / "edgeguard-lab"


def _list_file(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def _kernel_package() -> tuple[str, str]:
    """The versioned image package linux-image-amd64 points at, and its version."""
    out = subprocess.run([APT_CACHE, "depends", "linux-image-amd64"], check=True,
                         capture_output=True, text=True).stdout
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", out)
    if match is None:
        raise RuntimeError(f"cannot resolve linux-image-amd64 (run apt-get update?): {out!r}")
    pkg = match.group(1)
    pol = subprocess.run([APT_CACHE, "policy", pkg], check=True, capture_output=True,
                         text=True).stdout
    cand = re.search(r"Candidate: (\S+)", pol)
    return pkg, cand.group(1) if cand else "unknown"


def _runtime_dists() -> list[importlib.metadata.Distribution]:
    """The distributions of edgeguard's runtime dependencies as installed for the Python
    running the tests (pyproject.toml ``[project].dependencies``).

    The guest gets exactly these: Debian bookworm's packages are older (pyroute2 0.7 lacks
    the asyncio nl80211 socket edgeguard uses) and orjson is not packaged at all, and a lab
    that tests other library versions than the unit tests would prove the wrong thing.
    The guest's Python is Debian's 3.11, the same ABI as the host's, so compiled
    extensions (orjson, PyYAML's _yaml) load there too.
    """
    meta = tomllib.loads((TREE / "pyproject.toml").read_text())
    names = [re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]
             for dep in meta["project"]["dependencies"]]
    return [importlib.metadata.distribution(name) for name in names]


def _recipe_files() -> Iterator[Path]:
    yield Path(__file__).resolve()
    yield HERE / "packages.txt"
    yield HERE / "modules.txt"
    yield from sorted(p for p in GUEST_DIR.rglob("*") if p.is_file())


def recipe_key() -> str:
    """Content hash of the recipe (files + resolved kernel + orjson version)."""
    h = hashlib.sha256()
    for path in _recipe_files():
        h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes() + b"\0")
    pkg, ver = _kernel_package()
    h.update(f"{pkg}={ver}\0".encode())
    for dist in _runtime_dists():
        h.update(f"{dist.metadata['Name']}=={dist.version}\0".encode())
    return h.hexdigest()[:16]


def _run(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]


def _fetch_kernel(work: Path) -> tuple[Path, str]:
    pkg, _ver = _kernel_package()
    dl = work / "dl"
    dl.mkdir()
    os.chmod(dl, 0o777)
    _run([APT_GET, "download", "-q", pkg], cwd=dl, stdout=subprocess.DEVNULL)
    debs = list(dl.glob("*.deb"))
    tree = work / "kernel"
    _run([DPKG_DEB, "-x", str(debs[0]), str(tree)])
    kver = pkg.removeprefix("linux-image-")
    return tree, kver


def _rootfs(work: Path) -> Path:
    root = work / "root"
    argv = [MMDEBSTRAP, "--variant=minbase", "--mode=root", "--quiet",
            "--include=" + ",".join(_list_file("packages.txt"))]
    argv += [f"--dpkgopt=path-exclude={p}" for p in EXCLUDES]
    argv += [f"--dpkgopt=path-include={KEEP_DOC}"]
    argv += [SUITE, str(root), *MIRRORS]
    _run(argv)
    for junk in ("var/cache/apt", "var/lib/apt/lists", "var/log"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)
    return root


def _module_closure(moddir: Path, lists: tuple[str, ...] = ("modules.txt",)) -> set[str]:
    """Relative paths (kernel/...) of the wanted modules and everything they depend on."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", Path(m).name).replace("-", "_"): m for m in deps}
    want: list[str] = []
    for entry in (e for name in lists for e in _list_file(name)):
        if entry.endswith("/"):
            prefix = "kernel/" + entry
            want += [m for m in deps if m.startswith(prefix)]
        else:
            name = entry.replace("-", "_")
            if name not in by_name:
                builtin = (moddir / "modules.builtin").read_text()
                if f"/{entry}.ko" in builtin or f"/{name}.ko" in builtin:
                    continue
                raise RuntimeError(f"modules.txt: no module {entry!r} in this kernel")
            want.append(by_name[name])
    seen: set[str] = set()
    while want:
        mod = want.pop()
        if mod not in seen:
            seen.add(mod)
            want += deps.get(mod, [])
    return seen


def _install_modules(ktree: Path, kver: str, root: Path,
                     lists: tuple[str, ...] = ("modules.txt",)) -> None:
    _run([DEPMOD, "-b", str(ktree), kver])
    src = ktree / "lib/modules" / kver
    dst = root / "lib/modules" / kver
    dst.mkdir(parents=True, exist_ok=True)
    for rel in _module_closure(src, lists):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy2(src / meta, dst / meta)
    _run([DEPMOD, "-b", str(root), kver])


def _install_guest_files(root: Path) -> None:
    shutil.copy2(GUEST_DIR / "init", root / "init")
    os.chmod(root / "init", 0o755)
    lib = root / "usr/lib/edgelab"
    lib.mkdir(parents=True, exist_ok=True)
    for f in GUEST_DIR.iterdir():
        if f.name != "init":
            shutil.copy2(f, lib / f.name)
    site = root / SITE
    for dist in _runtime_dists():
        for rel in dist.files or ():
            if ".." in rel.parts or "__pycache__" in rel.parts:  # console scripts, caches
                continue
            dst = site / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(rel))), dst)
    (root / "etc/hostname").write_text("edgelab\n")


def _pack(root: Path, out: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = ("\0".join([".", *files]) + "\0").encode()
    with out.open("wb") as sink:
        cpio = subprocess.Popen([CPIO, "--null", "--quiet", "-o", "-H", "newc",
                                 "--owner", "0:0"], cwd=root, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        zstd = subprocess.Popen([ZSTD, "-q", "-T0", "-6", "-c"], stdin=cpio.stdout,
                                stdout=sink)
        assert cpio.stdin is not None
        assert cpio.stdout is not None
        cpio.stdout.close()
        cpio.stdin.write(listing)
        cpio.stdin.close()
        if cpio.wait() != 0 or zstd.wait() != 0:
            raise RuntimeError("packing the initramfs failed")


def build(*, force: bool = False, log: bool = True) -> GuestImage:
    """Return the cached guest for the current recipe, building it first if needed."""
    key = recipe_key()
    base = cache_root()
    base.mkdir(parents=True, exist_ok=True)
    final = base / key
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest sessions must not build twice
        if force and final.exists():
            shutil.rmtree(final)
        for stale in base.glob("build-*"):  # left by an interrupted build
            shutil.rmtree(stale, ignore_errors=True)
        if not (final / "manifest.json").exists():
            if log:
                print(f"edgelab: building guest image {key} in {base}", flush=True)
            work = Path(tempfile.mkdtemp(prefix="build-", dir=base))
            os.chmod(work, 0o755)  # apt-get download runs as _apt where it can
            try:
                ktree, kver = _fetch_kernel(work)
                root = _rootfs(work)
                _install_modules(ktree, kver, root)
                _install_guest_files(root)
                out = work / "out"
                out.mkdir()
                shutil.copy2(ktree / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
                _pack(root, out / "initrd.img")
                pkg, ver = _kernel_package()
                (out / "manifest.json").write_text(json.dumps({
                    "key": key, "kernel_package": pkg, "kernel_package_version": ver,
                    "kernel_version": kver, "suite": SUITE,
                    "packages": _list_file("packages.txt"),
                    "initrd_bytes": (out / "initrd.img").stat().st_size,
                }, indent=2) + "\n")
                for old in base.iterdir():  # keep one image: the cache stays bounded
                    if old.is_dir() and not old.name.startswith(("build-", ".", "sd-")):
                        shutil.rmtree(old)
                out.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    meta = json.loads((final / "manifest.json").read_text())
    return GuestImage(key=key, kernel=final / "vmlinuz", initrd=final / "initrd.img",
                      kernel_version=meta["kernel_version"])
