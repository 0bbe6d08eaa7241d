"""Put edgeguard's system files in place for a profile, and take them away again.

What goes where (shipped defaults in /usr/lib, the administrator's files in /etc):

* ``usr/lib/udev/rules.d/``: the shipped udev rules (media read-only for every profile,
  USB hold for the kiosk profile);
* ``usr/lib/systemd/system/edgeguard.service`` and ``edgeguard-ship.service``: the
  hardened units (the daemon, and the remote audit shipper it leaves Internet sockets
  to), verbatim;
* ``etc/systemd/system/<unit>.d/10-install.conf``: which executable and which profile
  each unit's ``edgeguard`` commands run with (the policy file has no profile key, so the
  units carry it); written from the shipped unit's own ``Exec*=`` lines;
* ``etc/edgeguard/policy.yaml``: a starting policy naming the profile, written only if
  absent and never overwritten (the administrator's file);
* ``var/log/edgeguard``: the audit directory, 0750 root:adm; ``var/lib/edgeguard``: state.

A manifest (``var/lib/edgeguard/install.json``) records what was installed and each
file's hash, so ``uninstall`` removes exactly that, keeps a policy the administrator
changed, and a profile switch removes the previous profile's rule. Running install again
changes nothing that is already right (idempotent). Against a ``--root`` directory
nothing outside it is touched: no systemctl, no udevadm, no sysfs.
"""

from __future__ import annotations

import grp
import hashlib
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard import __version__
from edgeguard.fsutil import atomic_write
from edgeguard.kiosk.sysfs import UsbSysfs
from edgeguard.policy.load import PROFILES

__all__ = ["InstallError", "Installer", "Step", "default_exec", "systemd_booted"]

UNIT_NAME = "edgeguard.service"
SHIP_UNIT_NAME = "edgeguard-ship.service"
UNIT_NAMES = (UNIT_NAME, SHIP_UNIT_NAME)
RULES_DIR = Path("usr/lib/udev/rules.d")
UNIT_DIR = Path("usr/lib/systemd/system")
#: The shipped units name the console script here; the drop-ins name the real one.
SHIPPED_EXEC = "/usr/bin/edgeguard"
POLICY_PATH = Path("etc/edgeguard/policy.yaml")
AUDIT_DIR = Path("var/log/edgeguard")
STATE_DIR = Path("var/lib/edgeguard")
MANIFEST = STATE_DIR / "install.json"
#: Rules only some profiles get; every other shipped rule goes to every profile.
PROFILE_RULES = {"60-edgeguard-kiosk.rules": ("kiosk",)}
TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

Runner = Callable[[Sequence[str]], int]


class InstallError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Step:
    """One thing install/uninstall did: ``created``, ``updated``, ``unchanged``,
    ``removed``, ``kept``, ``ran``, ``failed`` or ``skipped``."""

    action: str
    target: str
    detail: str = ""


def systemd_booted() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system exists."""
    return Path("/run/systemd/system").is_dir()


def default_exec() -> str:
    """The command the unit runs: this environment's own ``edgeguard`` script (the one
    beside the running interpreter: a virtualenv's ``bin/``, the package's
    /usr/lib/edgeguard/bin), else the script on ``PATH``, else this interpreter with
    ``-m edgeguard``.

    The interpreter path is made absolute but never resolved: a virtualenv's
    ``bin/python`` is a symlink to the base interpreter, and only the link (which finds
    ``pyvenv.cfg`` beside it) sees the virtualenv's packages.
    """
    interpreter = Path(os.path.abspath(sys.executable))
    beside = interpreter.parent / "edgeguard"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    script = shutil.which("edgeguard")
    return script if script else f"{interpreter} -m edgeguard"


def _run(argv: Sequence[str]) -> int:
    tool = shutil.which(argv[0], path=TOOL_PATH)
    if tool is None:
        return 127
    return subprocess.run([tool, *argv[1:]], check=False, timeout=120,  # noqa: S603 - argv list
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shipped(kind: str, name: str) -> bytes:
    return (importlib.resources.files("edgeguard") / kind / name).read_bytes()


def shipped_rules() -> list[str]:
    return sorted(p.name for p in (importlib.resources.files("edgeguard") / "rules").iterdir()
                  if p.name.endswith(".rules"))


#: What a first install runs in: decide and audit, enforce nothing (docs/install.md).
FIRST_RUN_MODE = "monitor"


def policy_template(profile: str | None) -> bytes:
    """The starting /etc/edgeguard/policy.yaml: ``mode: monitor`` and what to set before
    switching to enforce. ``profile`` None is the Debian package's (no profile chosen)."""
    if profile is None:
        layer = ("# default, which the service runs with until `edgeguard install --profile\n"
                 "# gateway` (or kiosk) names this machine's role in\n"
                 "# /etc/systemd/system/edgeguard.service.d/10-install.conf.")
    else:
        layer = (f'# default and the "{profile}" profile, which the service runs with\n'
                 f"# (`edgeguard run --profile {profile}`, set in\n"
                 "# /etc/systemd/system/edgeguard.service.d/10-install.conf by "
                 "`edgeguard install`).")
    check = f"edgeguard check --profile {profile}" if profile else "edgeguard check"
    return f"""\
# /etc/edgeguard/policy.yaml: this machine's policy. It is layered on the shipped
{layer}
#
# A new install runs in monitor mode: every decision is audited, nothing is enforced
# (media are still made read-only by the udev rule). Look at `edgeguard status` and
# `edgeguard audit tail` first; then set `mode: enforce` below and `systemctl reload
# edgeguard`.
#
# A gateway must name the interface(s) to watch (its LAN side; `ip -br link` lists them):
# network:
#   interfaces: [enp3s0]
#
# Write here only what differs on this machine, for example the trust's register:
#
# media:
#   trusted_devices:
#     - {{id: IT-0042, vendor_id: "0951", product_id: "1666", serial: "0019E06B9C8AF0A0"}}
# kiosk:
#   allowlist:
#     - {{id: scanner-1, vendor_id: "05e0", product_id: "1200"}}
#
# Check it with `{check}`, apply with `systemctl reload edgeguard`.
# Every key, its default and unit: `edgeguard check --reference`.
version: 1
mode: {FIRST_RUN_MODE}
""".encode()


def dropin_path(unit: str) -> Path:
    return Path("etc/systemd/system") / f"{unit}.d" / "10-install.conf"


def dropin(unit: bytes, exec_cmd: str, profile: str) -> bytes:
    """Every ``Exec*=`` line of the shipped unit that runs edgeguard, again with this
    host's executable and ``--profile`` (each key emptied first, as systemd wants)."""
    lines = [f"# Written by `edgeguard install --profile {profile}` (edgeguard {__version__}).",
             "[Service]"]
    for line in unit.decode().splitlines():
        key, sep, value = line.partition("=")
        prefix = value[:1] if value[:1] in "+-@:!" else ""
        command = value[len(prefix):]
        if not (sep and key.startswith("Exec") and command.startswith(SHIPPED_EXEC + " ")):
            continue
        args = command[len(SHIPPED_EXEC):]
        lines += [f"{key}=", f"{key}={prefix}{exec_cmd}{args} --profile {profile}"]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Installer:
    root: Path = Path("/")
    runner: Runner = _run
    live: bool | None = None  # touch the running system (systemctl, udevadm, sysfs)
    sysfs: Path = Path("/sys")
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = self.root.resolve() == Path("/") and systemd_booted()

    def _p(self, rel: Path) -> Path:
        return self.root / rel

    def _put(self, rel: Path, data: bytes, mode: int = 0o644) -> bool:
        path = self._p(rel)
        try:
            if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
                self.steps.append(Step("unchanged", f"/{rel}"))
                return False
            action = "updated"
        except FileNotFoundError:
            action = "created"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        atomic_write(path, data, mode)
        self.steps.append(Step(action, f"/{rel}"))
        return True

    def _dir(self, rel: Path, mode: int, group: str | None = None) -> None:
        path = self._p(rel)
        existed = path.is_dir()
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        if group is not None and os.geteuid() == 0:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                gid = 0
            os.chown(path, 0, gid)
        os.chmod(path, mode)  # after chown, which may clear set-group-ID
        self.steps.append(Step("unchanged" if existed else "created", f"/{rel}",
                               f"mode {mode:04o}" + (f" root:{group}" if group else "")))

    def manifest(self) -> dict[str, object]:
        try:
            doc: dict[str, object] = json.loads(self._p(MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return doc

    # -- install ---------------------------------------------------------------------------
    def install(self, profile: str, exec_cmd: str | None = None) -> list[Step]:
        if profile not in PROFILES:
            raise InstallError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        old = self.manifest()
        files: dict[str, str] = {}
        changed = False
        for name in shipped_rules():
            if profile not in PROFILE_RULES.get(name, (profile,)):
                continue
            data = shipped("rules", name)
            changed |= self._put(RULES_DIR / name, data)
            files[f"/{RULES_DIR / name}"] = _sha(data)
        for name in UNIT_NAMES:
            unit = shipped("systemd", name)
            changed |= self._put(UNIT_DIR / name, unit)
            files[f"/{UNIT_DIR / name}"] = _sha(unit)
            drop = dropin(unit, exec_cmd or default_exec(), profile)
            changed |= self._put(dropin_path(name), drop)
            files[f"/{dropin_path(name)}"] = _sha(drop)
        policy_sha = old.get("policy_sha256")
        try:
            current: bytes | None = self._p(POLICY_PATH).read_bytes()
        except FileNotFoundError:
            current = None
        if current is None or _sha(current) == policy_sha:  # absent, or still our template
            template = policy_template(profile)
            self._put(POLICY_PATH, template)
            policy_sha = _sha(template)
        else:
            self.steps.append(Step("kept", f"/{POLICY_PATH}", "the administrator's file"))
        self._dir(AUDIT_DIR, 0o2750, "adm")  # set-group-ID: edgeguard.audit.ownership
        self._dir(STATE_DIR, 0o700)
        stale = old.get("files")
        if isinstance(stale, dict):
            for path in sorted(set(stale) - set(files)):  # e.g. the previous profile's rule
                self._remove(Path(path.lstrip("/")), str(stale[path]))
        doc = {"version": __version__, "profile": profile, "files": files,
               "policy_sha256": policy_sha}
        atomic_write(self._p(MANIFEST), json.dumps(doc, indent=1, sort_keys=True).encode(),
                     0o600)
        self._system_after_install(changed)
        return self.steps

    def _system_after_install(self, changed: bool) -> None:
        if not self.live:
            self.steps.append(Step("skipped", "systemctl/udevadm",
                                   "--root given or systemd is not PID 1"))
            return
        self._tool(["udevadm", "control", "--reload"])
        self._tool(["systemctl", "daemon-reload"])
        self._tool(["systemctl", "enable", "--now", *UNIT_NAMES])
        if changed:
            self._tool(["systemctl", "try-restart", *UNIT_NAMES])

    def _tool(self, argv: list[str]) -> None:
        code = self.runner(argv)
        self.steps.append(Step("ran" if code == 0 else "failed", " ".join(argv),
                               "" if code == 0 else f"exit {code}"))

    # -- uninstall -------------------------------------------------------------------------
    def _remove(self, rel: Path, sha: str | None = None) -> None:
        path = self._p(rel)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        if sha is not None and _sha(data) != sha:
            self.steps.append(Step("kept", f"/{rel}", "changed since install"))
            return
        path.unlink()
        self.steps.append(Step("removed", f"/{rel}"))

    def uninstall(self, purge: bool = False) -> list[Step]:
        old = self.manifest()
        if self.live:
            self._tool(["systemctl", "disable", "--now", *UNIT_NAMES])
        files = old.get("files")
        if isinstance(files, dict):
            for path, sha in sorted(files.items()):
                self._remove(Path(path.lstrip("/")), None if purge else str(sha))
        else:  # no manifest: the names we ship
            for name in shipped_rules():
                self._remove(RULES_DIR / name)
            for name in UNIT_NAMES:
                self._remove(UNIT_DIR / name)
                self._remove(dropin_path(name))
        policy_sha = old.get("policy_sha256")
        self._remove(POLICY_PATH, None if purge else
                     (str(policy_sha) if policy_sha else "not ours"))
        for rel in (*(dropin_path(n).parent for n in UNIT_NAMES), POLICY_PATH.parent):
            self._rmdir(rel)
        self._remove(MANIFEST)
        if purge:
            for rel in (AUDIT_DIR, STATE_DIR):
                if self._p(rel).exists():
                    shutil.rmtree(self._p(rel))
                    self.steps.append(Step("removed", f"/{rel}", "--purge"))
        elif self._p(AUDIT_DIR).exists():
            self.steps.append(Step("kept", f"/{AUDIT_DIR}", "the audit trail (--purge removes)"))
        if self.live:
            self._tool(["systemctl", "daemon-reload"])
            self._tool(["udevadm", "control", "--reload"])
            self._reopen_usb()
        return self.steps

    def _rmdir(self, rel: Path) -> None:
        try:
            self._p(rel).rmdir()
            self.steps.append(Step("removed", f"/{rel}"))
        except OSError:
            pass  # not empty or absent: the administrator's

    def _reopen_usb(self) -> None:
        """The kiosk hold outlives the daemon: give root hubs the kernel default back."""
        try:
            hubs = UsbSysfs(self.sysfs).set_authorized_default("1")
        except OSError as exc:
            self.steps.append(Step("failed", "authorized_default=1", str(exc)))
            return
        if hubs:
            self.steps.append(Step("ran", "authorized_default=1", ", ".join(sorted(hubs))))
