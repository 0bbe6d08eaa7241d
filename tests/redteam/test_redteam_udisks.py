"""An unprivileged user, and root, against a protected stick through udisks.

The desktop way to a stick is not ``dd`` but udisks: ``udisksctl mount``, a file
manager's "Format..." or "Rename...", a disk utility deleting a partition. Here the
packaged ``udisksd`` and ``polkitd`` run on a *private* system bus (see
``udisks_support``), the real daemon judges a loop-device stick exactly as in
``test_redteam_media`` (the shipped rule sets BLKROSET on the disk and its partitions
and marks them ``UDISKS_SYSTEM=1``/``UDISKS_IGNORE=1``), and then:

* the intruder reaches udisks (it can read the stick's properties) but every call that
  would change or open the stick is refused by polkit, and polkitd's log shows the
  ``-system`` action edgeguard's udev properties select, whose defaults require an
  administrator even from an active console session;
* root, whom polkit always authorizes, still cannot Format, relabel, repartition or
  write through the device via udisks: the kernel read-only flag refuses the write and
  the stick's bytes are unchanged. A udisks Mount comes out read-only, an explicit
  ``rw`` mount is refused.

A loop device without the USB identity is the positive control: the same udisks calls
by root succeed on it, so the refusals are the flag, not a broken udisks.

Not covered here (no USB bus, no logind on this host): ``Drive.PowerOff``/``Eject``
(a loop device has no Drive object), and a real active logind session. The latter is
covered statically: the test reads the packaged polkit defaults of the actions the
refusals named.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.linux.media.media_sticks import (
    Stick,
    StickSpec,
    attach,
    blkroget,
    build_image,
    detach,
    make_fs,
)
from tests.redteam.conftest import HostDaemon
from tests.redteam.redteam_support import User
from tests.redteam.udisks_support import (
    POLKITD,
    UDISKSD,
    CallResult,
    UdisksStack,
    udisks_stack,
)
from tests.support.process import host_processes

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

HERE = Path(__file__).resolve().parent
OPEN_WRITE = HERE / "udisks_open_write.py"
SYSTEM_PYTHON = "/usr/bin/python3"
ACTIONS = Path("/usr/share/polkit-1/actions/org.freedesktop.UDisks2.policy")
NOT_AUTHORIZED = "org.freedesktop.UDisks2.Error.NotAuthorizedCanObtain"
FAILED = "org.freedesktop.UDisks2.Error.Failed"
#: what polkitd answers for an inactive/unknown session: an admin password, which
#: nobody can give here (no agent, and the intruder is no administrator)
CHALLENGE = "challenge (implicit_authorization = auth_admin)"
EMPTY_OPTIONS = "{}"


def _tag() -> str:
    return f"{os.getpid() % 100000}"


def _records(daemon: HostDaemon) -> list[dict[str, Any]]:
    out = []
    for path in sorted(daemon.audit.glob("*.jsonl")):
        out.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return out


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _mounts_of(device: str) -> list[tuple[str, set[str]]]:
    """(target, options) of every mount of ``/dev/<device>``."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[1] == f"/dev/{device}":
            out.append((fields[4], set(fields[5].split(","))))
    return out


def _umount_all(device: str) -> None:
    for target, _ in reversed(_mounts_of(device)):
        subprocess.run(["/usr/bin/umount", target], check=False, capture_output=True,
                       timeout=30)


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def udisks(host_daemon: HostDaemon) -> Iterator[UdisksStack]:
    for binary in (UDISKSD, POLKITD, SYSTEM_PYTHON):
        if not Path(binary).exists():
            pytest.skip(f"{binary} missing (ci/apt.d/redteam.txt)")
    if host_processes("udisksd"):
        pytest.skip("a host udisksd runs: two would share /run/udisks2")
    with udisks_stack(Path(f"/run/egud-{_tag()}")) as stack:
        yield stack


def _holders(partitions: list[str]) -> list[str]:
    """Processes in *other* mount namespaces that still see a mount of ``partitions``."""
    own = os.readlink("/proc/self/ns/mnt")
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "mnt") == own:
                continue
            text = (entry / "mountinfo").read_text()
            if any(f"/dev/{part} " in text for part in partitions):
                out.append(f"{entry.name} {(entry / 'comm').read_text().strip()}")
        except OSError:
            continue
    return out


@contextlib.contextmanager
def _shared_subtree(path: Path) -> Iterator[None]:
    """Make ``path`` a shared mount for the stick's lifetime.

    The daemon mounts the stick's partitions below ``path``. This host's ``/`` is a
    private mount, so a process that enters a new mount namespace meanwhile (``ip netns
    exec`` in a concurrent network test) keeps a private copy of those mounts, holds
    the partitions open, and the stick cannot be taken apart. Below a shared mount the
    copies are slaves and our unmount reaches them too.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    subprocess.run(["/usr/bin/mount", "--bind", str(path), str(path)], check=True,
                   capture_output=True, timeout=30)
    try:
        subprocess.run(["/usr/bin/mount", "--make-shared", str(path)], check=True,
                       capture_output=True, timeout=30)
        yield
    finally:
        subprocess.run(["/usr/bin/umount", "--lazy", str(path)], check=False,
                       capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def ustick(host_daemon: HostDaemon, udisks: UdisksStack,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stick]:
    """A visitor's stick with two ext4 partitions, judged read-only by the daemon, which
    mounts both read-only. The second is unmounted again (as root) so that udisks may try
    to mount it; the first stays the daemon's mount."""
    image = build_image(tmp_path_factory.mktemp("ustick"),
                        StickSpec(name="udisks", partitions=("ext4", "ext4"),
                                  serial="VISITOR-UD"))
    with _shared_subtree(host_daemon.mounts):
        made = attach(image, 2)
        try:
            for part in made.partitions:
                _wait(lambda p=part: any(
                    r["event"]["action"] == "usb-read-only"
                    and r.get("volume", {}).get("device_name") == f"/dev/{p}"
                    for r in _records(host_daemon)), f"the daemon's verdict on {part}")
                _wait(lambda p=part: bool(_mounts_of(p)),
                      f"the daemon's read-only mount of {part}")
            _umount_all(made.partitions[1])
            for node in made.nodes:
                _wait(lambda n=node: udisks.prop(n, "Block", "ReadOnly") == "true",
                      f"udisks to see {node} read-only")
            yield made
        finally:
            for part in made.partitions:
                _umount_all(part)
            with contextlib.suppress(AssertionError):
                _wait(lambda: not _holders(made.partitions), "foreign mount copies to go")
            holders = _holders(made.partitions)
            detach(made)
            left = [p for p in made.partitions if Path(f"/sys/class/block/{p}").exists()]
            assert not left, f"{left} still held by {holders}: delete them with partx -d"


@pytest.fixture
def unchanged(ustick: Stick) -> Iterator[None]:
    """The stick's bytes and kernel flag are the same after the test as before."""
    before = ustick.sha256()
    yield
    assert all(blkroget(node) for node in ustick.nodes)
    assert ustick.sha256() == before, "the stick's bytes changed"


# -- the intruder ------------------------------------------------------------------------
def test_intruder_reaches_udisks_and_sees_a_read_only_system_device(
        udisks: UdisksStack, ustick: Stick, intruder: User) -> None:
    """The bus is open to the intruder (the refusals below are polkit's, not a socket
    permission), and udisks shows what the shipped rule set."""
    for node in ustick.nodes:
        info = udisks.udisksctl("info", "-b", f"/dev/{node}", user=intruder)
        assert info.returncode == 0, info.stderr
        props = dict(line.strip().split(":", 1) for line in info.stdout.splitlines()
                     if line.startswith("    ") and ":" in line)
        assert props["ReadOnly"].strip() == "true"
        assert props["HintSystem"].strip() == "true"  # UDISKS_SYSTEM=1: "-system" actions
        assert props["HintIgnore"].strip() == "true"  # UDISKS_IGNORE=1: not shown on desktops
        assert props["HintAuto"].strip() == "false"  # UDISKS_AUTO=0: never automounted


def _intruder_cases(stick: Stick, own_image: Path) -> dict[str, tuple[list[str], str]]:
    """Each attempt as (argv after the udisks client, polkit action it must be refused
    by). ``udisksctl`` where it has a command, ``gdbus`` for the rest."""
    disk, p1, p2 = stick.loop, stick.partitions[0], stick.partitions[1]
    return {
        "mount": (["udisksctl", "mount", "-b", f"/dev/{p2}"], "filesystem-mount-system"),
        "unmount-daemon-mount": (["udisksctl", "unmount", "-b", f"/dev/{p1}"],
                                 "filesystem-unmount-others"),
        "format-partition": (["gdbus", p2, "Block.Format", "vfat", EMPTY_OPTIONS],
                             "modify-device-system"),
        "format-disk": (["gdbus", disk, "Block.Format", "dos", EMPTY_OPTIONS],
                        "modify-device-system"),
        "set-label": (["gdbus", p2, "Filesystem.SetLabel", "PWNED", EMPTY_OPTIONS],
                      "modify-device-system"),
        "delete-partition": (["gdbus", p2, "Partition.Delete", EMPTY_OPTIONS],
                             "modify-device-system"),
        "create-partition": (["gdbus", disk, "PartitionTable.CreatePartition", "0",
                              "1048576", "''", "''", EMPTY_OPTIONS], "modify-device-system"),
        "open-device-rw": (["gdbus", disk, "Block.OpenDevice", "rw", EMPTY_OPTIONS],
                           "open-device-system"),
        "open-for-restore": (["gdbus", p1, "Block.OpenForRestore", EMPTY_OPTIONS],
                             "open-device-system"),
        "detach-loop": (["gdbus", disk, "Loop.Delete", EMPTY_OPTIONS], "loop-delete-others"),
        "loop-setup-own-file": (["udisksctl", "loop-setup", "-f", str(own_image)],
                                "loop-setup"),
    }


INTRUDER_CASES = ["mount", "unmount-daemon-mount", "format-partition", "format-disk",
                  "set-label", "delete-partition", "create-partition", "open-device-rw",
                  "open-for-restore", "detach-loop", "loop-setup-own-file"]


@pytest.fixture(scope="module")
def own_image(udisks: UdisksStack, intruder: User) -> Path:
    """An image file the intruder owns: what it would loop-mount as its "own" stick."""
    home = udisks.base / "intruder"
    home.mkdir(mode=0o755)
    image = home / "own.img"
    make_fs(image, "raw", 8 * 2**20)
    os.chown(image, intruder.uid, intruder.gid)
    return image


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", INTRUDER_CASES)
def test_intruder_is_refused_by_polkit(udisks: UdisksStack, ustick: Stick, intruder: User,
                                       own_image: Path, case: str) -> None:
    argv, action = _intruder_cases(ustick, own_image)[case]
    mark = udisks.polkit_mark()
    if argv[0] == "udisksctl":
        result = udisks.udisksctl(*argv[1:], user=intruder)
    else:
        _, node, method, *args = argv
        result = udisks.block(node, method, *args, user=intruder)
    assert result.returncode != 0
    assert result.error == NOT_AUTHORIZED, result.stderr
    checks = udisks.polkit_checks(mark)
    assert [(c.action, c.subject, c.verdict) for c in checks] == [
        (f"org.freedesktop.udisks2.{action}", intruder.name, CHALLENGE)], checks
    # nothing happened on the side: the daemon's mount is still read-only, no new loop
    assert {"ro"} <= _mounts_of(ustick.partitions[0])[0][1]
    assert not _mounts_of(ustick.partitions[1])
    assert f"{own_image}" not in subprocess.run(
        ["/usr/sbin/losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True, text=True, check=True).stdout


def test_intruder_cannot_write_through_a_udisks_descriptor(
        udisks: UdisksStack, ustick: Stick, intruder: User, unchanged: None) -> None:
    """The real client path for OpenDevice (a Unix fd over D-Bus), not only gdbus."""
    result = _open_write(udisks, ustick.loop, "OpenDevice", "rw", user=intruder)
    assert result == {"dbus_error": NOT_AUTHORIZED,
                      "message": "Not authorized to perform operation"}


def test_refusing_actions_need_an_admin_even_at_the_console() -> None:
    """This host has no logind, so every caller is "inactive". On a kiosk the pupil *is*
    the active session: the ``-system`` actions that UDISKS_SYSTEM=1 selects still need
    an administrator password there, where the plain ones would be allowed."""
    defaults = {}
    for action in ET.parse(ACTIONS).getroot().iter("action"):
        d = action.find("defaults")
        assert d is not None
        defaults[action.get("id", "").rpartition(".")[2]] = (
            d.findtext("allow_any"), d.findtext("allow_inactive"), d.findtext("allow_active"))
    admin = {"auth_admin", "auth_admin_keep"}
    for action in ("filesystem-mount-system", "filesystem-unmount-others",
                   "modify-device-system", "open-device-system", "loop-delete-others",
                   "power-off-drive-system", "eject-media-system"):
        assert set(defaults[action]) <= admin, (action, defaults[action])
    # what a stick *without* edgeguard's properties would get: the active user may
    for action in ("filesystem-mount", "modify-device", "power-off-drive", "eject-media"):
        assert defaults[action][2] == "yes", (action, defaults[action])


# -- root, whom polkit authorizes --------------------------------------------------------
def _open_write(stack: UdisksStack, node: str, method: str, *args: str,
                user: User | None = None) -> dict[str, Any]:
    result = stack.run([SYSTEM_PYTHON, str(OPEN_WRITE), f"{_block_path(node)}", method,
                        *args], user=user)
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _block_path(node: str) -> str:
    return f"/org/freedesktop/UDisks2/block_devices/{node}"


def _assert_failed(result: CallResult, *fragments: str) -> None:
    assert result.returncode != 0
    assert result.error == FAILED, result.stderr
    for fragment in fragments:
        assert fragment in result.message, result.message


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("node", "kind", "options"), [
    ("partition", "vfat", EMPTY_OPTIONS),
    ("partition", "ext4", "{'erase': <'zero'>}"),
    ("disk", "dos", EMPTY_OPTIONS),
    ("disk", "empty", EMPTY_OPTIONS),
])
def test_root_cannot_format_through_udisks(udisks: UdisksStack, ustick: Stick, node: str,
                                           kind: str, options: str) -> None:
    name = ustick.loop if node == "disk" else ustick.partitions[1]
    result = udisks.block(name, "Block.Format", kind, options)
    _assert_failed(result, "Error wiping device", f"/dev/{name}")


@pytest.mark.usefixtures("unchanged")
def test_root_cannot_relabel_through_udisks(udisks: UdisksStack, ustick: Stick) -> None:
    result = udisks.block(ustick.partitions[1], "Filesystem.SetLabel", "PWNED", EMPTY_OPTIONS)
    _assert_failed(result, "Error setting label", "Operation not permitted")
    assert udisks.prop(ustick.partitions[1], "Block", "IdLabel") == "'EGMSTICK'"


@pytest.mark.usefixtures("unchanged")
def test_root_cannot_repartition_through_udisks(udisks: UdisksStack, ustick: Stick) -> None:
    deleted = udisks.block(ustick.partitions[1], "Partition.Delete", EMPTY_OPTIONS)
    _assert_failed(deleted, "Error deleting partition", "Operation not permitted during write")
    created = udisks.block(ustick.loop, "PartitionTable.CreatePartition", "60000000",
                           "1048576", "''", "''", EMPTY_OPTIONS)
    _assert_failed(created, "Error creating partition", "Operation not permitted during write")
    retyped = udisks.block(ustick.partitions[1], "Partition.SetType", "0x0c", EMPTY_OPTIONS)
    _assert_failed(retyped, "Error setting partition type")
    assert all(Path(f"/sys/class/block/{p}").exists() for p in ustick.partitions)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("method", "args", "node"), [
    ("OpenDevice", ("rw",), "disk"),
    ("OpenDevice", ("rw",), "partition"),
    # O_EXCL: the disk itself is busy while the daemon's mount holds its first partition
    ("OpenForRestore", (), "partition"),
])
def test_root_cannot_write_through_a_udisks_descriptor(
        udisks: UdisksStack, ustick: Stick, method: str, args: tuple[str, ...],
        node: str) -> None:
    """udisks hands root a writable descriptor; the kernel refuses the write (EPERM)."""
    name = ustick.loop if node == "disk" else ustick.partitions[1]
    result = _open_write(udisks, name, method, *args)
    assert result == {"errno": 1, "message": "Operation not permitted"}


@pytest.mark.usefixtures("unchanged")
def test_root_udisks_mount_comes_out_read_only(udisks: UdisksStack, ustick: Stick) -> None:
    part = ustick.partitions[1]
    mounted = udisks.udisksctl("mount", "-b", f"/dev/{part}")
    try:
        assert mounted.returncode == 0, mounted.stderr
        [(target, options)] = _mounts_of(part)
        assert mounted.stdout.strip() == f"Mounted /dev/{part} at {target}"
        assert {"ro", "nosuid", "nodev"} <= options
        assert udisks.prop(part, "Filesystem", "MountPoints") is not None
        planted = subprocess.run(["/usr/bin/touch", f"{target}/planted"],
                                 capture_output=True, text=True, check=False)
        assert planted.returncode != 0
        assert "Read-only file system" in planted.stderr
    finally:
        unmounted = udisks.udisksctl("unmount", "-b", f"/dev/{part}")
        if unmounted.returncode != 0:
            _umount_all(part)
    assert unmounted.returncode == 0, unmounted.stderr
    assert not _mounts_of(part)


@pytest.mark.usefixtures("unchanged")
def test_root_udisks_mount_read_write_is_refused(udisks: UdisksStack, ustick: Stick) -> None:
    part = ustick.partitions[1]
    try:
        result = udisks.udisksctl("mount", "-b", f"/dev/{part}", "-o", "rw")
    finally:
        if _mounts_of(part):
            udisks.udisksctl("unmount", "-b", f"/dev/{part}")
            _umount_all(part)
    _assert_failed(result, "is write-protected but explicit read-write mode requested")
    assert not _mounts_of(part)


# -- positive control --------------------------------------------------------------------
def test_positive_control_root_changes_an_unprotected_device_through_udisks(
        udisks: UdisksStack, tmp_path: Path) -> None:
    """Without the USB identity the same udisks calls by root succeed: the refusals
    above are the kernel flag (set because of the USB identity), not udisks itself."""
    image = tmp_path / "plain-disk.img"  # not egm-stick-*: no USB identity, no rule
    make_fs(image, "raw", 16 * 2**20)
    plain = attach(image, 0)
    try:
        assert not blkroget(plain.loop)
        _wait(lambda: udisks.prop(plain.loop, "Block", "ReadOnly") == "false",
              "udisks to see the plain loop device")
        formatted = udisks.block(plain.loop, "Block.Format", "ext4",
                                 "{'label': <'PLAIN'>}")
        assert formatted.returncode == 0, formatted.stderr
        relabelled = udisks.block(plain.loop, "Filesystem.SetLabel", "RELABEL",
                                  EMPTY_OPTIONS)
        assert relabelled.returncode == 0, relabelled.stderr
        blkid = subprocess.run(["/usr/sbin/blkid", "-o", "value", "-s", "LABEL",
                                f"/dev/{plain.loop}"], capture_output=True, text=True,
                               check=False)
        assert blkid.stdout.strip() == "RELABEL"
        assert _open_write(udisks, plain.loop, "OpenDevice", "rw") == {"wrote": 4096}
        assert image.read_bytes()[:4096] == b"\xa5" * 4096
    finally:
        _umount_all(plain.loop)
        detach(plain)


def test_udisks_and_the_daemon_survived(udisks: UdisksStack, host_daemon: HostDaemon,
                                        ustick: Stick) -> None:
    assert udisks.alive()
    assert host_daemon.alive()
    assert all(blkroget(node) for node in ustick.nodes)
