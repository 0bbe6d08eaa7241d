"""A private system bus with polkitd and udisksd on it, for the udisks red-team tests.

Nothing of the host's D-Bus is used or disturbed: ``dbus-daemon`` runs with a generated
configuration (the default-deny policy of Debian's ``system.conf`` plus the packages'
``system.d`` holes, no activation, no pid file, no syslog) listening on a socket in a
temporary 0755 directory, and every child gets ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at it.
``polkitd`` and ``udisksd`` are the packaged binaries with the packaged actions and
rules, started on that bus and stopped again by PID.

``polkitd`` runs with ``G_MESSAGES_DEBUG=all`` so its log names the action and the subject
of every authorization check; :meth:`UdisksStack.polkit_checks` reads them back, so a
test can assert *which* rule refused a call, not only that something did.

udisksd keeps state in fixed host paths (``/run/udisks2``, ``/var/lib/udisks2``) and
mounts under ``/media/root``: the ones this run created are removed again afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.redteam.redteam_support import User, as_user
from tests.support.process import terminate

__all__ = [
    "DBUS_DAEMON",
    "POLKITD",
    "UDISKSCTL",
    "UDISKSD",
    "CallResult",
    "PolkitCheck",
    "UdisksStack",
    "udisks_stack",
]

DBUS_DAEMON = "/usr/bin/dbus-daemon"
POLKITD = "/usr/lib/polkit-1/polkitd"
UDISKSD = "/usr/libexec/udisks2/udisksd"
UDISKSCTL = "/usr/bin/udisksctl"
GDBUS = "/usr/bin/gdbus"
UDISKS = "org.freedesktop.UDisks2"
#: udisksctl commands that take --no-user-interaction (the others refuse the option)
ASKING_COMMANDS = frozenset({"mount", "unmount", "loop-setup", "loop-delete", "power-off",
                             "unlock", "lock"})
BLOCK_PATH = "/org/freedesktop/UDisks2/block_devices"
#: Host paths udisksd writes to (state, persistent mount records, its mount root).
HOST_STATE = (Path("/run/udisks2"), Path("/var/lib/udisks2"), Path("/media/root"))

#: Debian's /usr/share/dbus-1/system.conf, minus what would touch the host (user switch,
#: fork, pid file, syslog, service activation) and with our own socket.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
"""

_GDBUS_ERROR = re.compile(r"GDBus\.Error:([\w.]+): (.*)")
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


@dataclass(frozen=True, slots=True)
class CallResult:
    """A CLI call against the bus: its exit code, output and the D-Bus error if any."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str | None:
        """The D-Bus error name (``org.freedesktop.UDisks2.Error.Failed``...)."""
        match = _GDBUS_ERROR.search(self.stderr)
        return match.group(1) if match else None

    @property
    def message(self) -> str:
        match = _GDBUS_ERROR.search(self.stderr)
        return match.group(2) if match else self.stderr


@dataclass(frozen=True, slots=True)
class PolkitCheck:
    """One authorization check as polkitd logged it."""

    action: str  # org.freedesktop.udisks2.modify-device-system
    subject: str  # the user name of the caller udisksd asked about
    verdict: str  # "challenge (implicit_authorization = auth_admin)", ...


class UdisksStack:
    """The running bus, polkitd and udisksd; calls made as root or as a given user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "system_bus_socket"
        self.config = base / "bus.conf"
        self.polkit_log = base / "polkitd.log"
        self.udisks_log = base / "udisksd.log"
        self.address = f"unix:path={self.socket}"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.config.write_text(BUS_CONFIG.format(socket=self.socket))
        bus = subprocess.Popen([DBUS_DAEMON, f"--config-file={self.config}", "--nofork",
                                "--print-address=1"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=BASE_ENV)
        self.procs.append(bus)
        assert bus.stdout is not None
        ready, _, _ = select.select([bus.stdout], [], [], 15)
        line = bus.stdout.readline().decode() if ready else ""
        if not line.startswith(self.address):
            raise RuntimeError(f"dbus-daemon did not start: {line!r}")
        self.socket.chmod(0o666)  # dbus-daemon makes it so; the test depends on it
        self._spawn([POLKITD], self.polkit_log, {"G_MESSAGES_DEBUG": "all"})
        self.wait_for_name("org.freedesktop.PolicyKit1")
        self._spawn([UDISKSD], self.udisks_log, {})
        self.wait_for_name(UDISKS)

    def _spawn(self, argv: Sequence[str], log: Path, extra: Mapping[str, str]) -> None:
        with log.open("ab") as out:
            self.procs.append(subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**BASE_ENV, **self.env, **extra}))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # udisksd, polkitd, then the bus
            terminate(proc, timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def wait_for_name(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = self.call("/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                               name, dest="org.freedesktop.DBus")
            if result.stdout.strip() == "(true,)":
                return
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"{name} did not appear on the private bus: "
                                   f"{self.udisks_log.read_text(errors='replace')[-2000:]}"
                                   if self.udisks_log.exists() else f"{name} did not appear")
            time.sleep(0.1)

    # -- calls ---------------------------------------------------------------------------
    def run(self, argv: Sequence[str], user: User | None = None,
            timeout: float = 120) -> CallResult:
        """Run a client (gdbus, udisksctl, python3) on the private bus, as root or ``user``
        (no supplementary groups, no capabilities)."""
        if user is None:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  check=False, cwd="/", env={**BASE_ENV, **self.env})
        else:
            done = as_user(user, argv, env=self.env, timeout=timeout)
        return CallResult(done.returncode, done.stdout, done.stderr)

    def call(self, path: str, method: str, *args: str, dest: str = UDISKS,
             user: User | None = None) -> CallResult:
        """``gdbus call`` one method; ``args`` in GVariant text form."""
        return self.run([GDBUS, "call", "--system", "--dest", dest, "--object-path", path,
                         "--method", method, *args], user=user)

    def block(self, name: str, method: str, *args: str, user: User | None = None,
              ) -> CallResult:
        """Call ``org.freedesktop.UDisks2.<method>`` on the block object of ``name``."""
        return self.call(f"{BLOCK_PATH}/{name}", f"{UDISKS}.{method}", *args, user=user)

    def udisksctl(self, command: str, *args: str, user: User | None = None) -> CallResult:
        """``udisksctl COMMAND ARGS``, never asking for a password (no agent here)."""
        flag = ["--no-user-interaction"] if command in ASKING_COMMANDS else []
        return self.run([UDISKSCTL, command, *args, *flag], user=user)

    def prop(self, name: str, interface: str, prop: str) -> str | None:
        """A property of a block object in GVariant text form, None if there is none."""
        result = self.call(f"{BLOCK_PATH}/{name}", "org.freedesktop.DBus.Properties.Get",
                           f"{UDISKS}.{interface}", prop)
        if result.returncode != 0:
            return None
        match = re.fullmatch(r"\(<(.*)>,\)", result.stdout.strip())
        return match.group(1) if match else result.stdout.strip()

    # -- polkit --------------------------------------------------------------------------
    def polkit_mark(self) -> int:
        return self.polkit_log.stat().st_size

    def polkit_checks(self, since: int = 0) -> list[PolkitCheck]:
        """The authorization checks polkitd logged after byte offset ``since``."""
        with self.polkit_log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        checks: list[PolkitCheck] = []
        action = subject = None
        for raw in text.splitlines():
            line = raw.partition("DEBUG: ")[2].partition(": ")[2].strip() if "DEBUG" in raw \
                else raw.strip()
            if m := re.search(r"is inquiring whether .* is authorized for (\S+)", line):
                action, subject = m.group(1), None
            elif m := re.fullmatch(r"user of subject is unix-user:(\S+)", line):
                subject = m.group(1)
            elif action and subject and line and not line.startswith(
                    ("checking whether", "user of caller", "(nil)")):
                checks.append(PolkitCheck(action, subject, line))
                action = subject = None
        return checks


@contextlib.contextmanager
def udisks_stack(base: Path) -> Iterator[UdisksStack]:
    """Start the private bus, polkitd and udisksd under ``base``; stop them by PID and
    remove the host state udisksd created, also when starting or a test failed."""
    created = [path for path in HOST_STATE if not path.exists()]
    media_created = not HOST_STATE[2].parent.exists()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)  # the intruder must reach the socket: only polkit may say no
    stack = UdisksStack(base)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        for path in created:
            with contextlib.suppress(OSError):
                if path.is_dir() and not os.path.ismount(path) and not _has_mounts(path):
                    shutil.rmtree(path)
        if media_created:
            with contextlib.suppress(OSError):
                HOST_STATE[2].parent.rmdir()
        shutil.rmtree(base, ignore_errors=True)


def _has_mounts(path: Path) -> bool:
    prefix = f"{path}/"
    return any(line.split()[4].startswith(prefix)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())
