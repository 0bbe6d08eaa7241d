"""Issue 20: the Debian package, installed for real under systemd in the lab.

A Debian 12 guest with systemd as PID 1 and a persistent ext4 root
(:mod:`edgelab.sdimage`) gets ``dist/edgeguard_*.deb`` (built from this tree by
``scripts/package.sh``, or ``$EDGEGUARD_DEB``) with ``apt-get install ./…deb``, offline.
Then, in order, on the one machine:

* the unit is active, ``Type=notify`` with a watchdog, in monitor mode (first run), and
  the package's own policy checks;
* a stick hot-plugged over QMP is read-only (the packaged udev rule) and audited;
* ``systemctl reload`` re-reads the policy; a broken drop-in is refused, the old policy
  kept, the unit still active;
* ``journalctl -u edgeguard`` shows the daemon;
* after a reboot the service is back and the audit chain continues and verifies;
* ``apt-get purge`` leaves no unit, drop-in, rule or /etc file; the audit trail stays.

CI cost: package build ~1 min, image build ~3.5 min (cached by recipe hash), two boots
of 1-2 min and the steps: 18 min in all on 2 cores at load 10 (docs/lab.md, "The systemd
guest"); an unloaded CI runner should need well under half of that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hardware" / "lab"))

from edgelab import sdimage, sticks  # noqa: E402
from edgelab.vm import SYSTEMD_CMDLINE, LabVM, qemu_binary  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]

DEB_DIR = "/root/dist"  # the .deb keeps its name: apt-get install ./edgeguard_<v>_<arch>.deb
SERIAL = "PKGSTICK01"
AUDIT = "/var/log/edgeguard"
APT_ENV = "DEBIAN_FRONTEND=noninteractive"


def _deb() -> Path:
    given = os.environ.get("EDGEGUARD_DEB")
    if given:
        return Path(given)
    subprocess.run(["/bin/bash", str(ROOT / "scripts/package.sh")], check=True, cwd=ROOT,
                   timeout=900, stdout=subprocess.DEVNULL)
    debs = sorted((ROOT / "dist").glob("edgeguard_*.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1]


@pytest.fixture(scope="module")
def deb() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (image build)")
    return _deb()


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory, deb: Path) -> Iterator[LabVM]:
    if qemu_binary() is None or shutil.which("mmdebstrap") is None:
        pytest.fail("lab tools missing (install ci/apt.d/lab.txt)")
    t0 = t1 = time.monotonic()
    img = sdimage.build()
    t2 = time.monotonic()
    work = tmp_path_factory.mktemp("sdvm")
    disk = work / "root.ext4"
    subprocess.run(["/bin/cp", "--sparse=always", str(img.disk), str(disk)], check=True)
    vm = LabVM(img, share=ROOT, workdir=work, disk=disk, cmdline=SYSTEMD_CMDLINE)
    vm.start()
    _booted(vm)
    vm.run("/bin/mkdir", "-p", DEB_DIR)
    vm.put(f"{DEB_DIR}/{deb.name}", deb.read_bytes())
    print(f"\nedgelab-sd: package {t1 - t0:.0f} s ({deb.stat().st_size} bytes), image "
          f"{t2 - t1:.0f} s, boot {vm.boot_seconds:.0f} s", file=sys.stderr)
    try:
        yield vm
    finally:
        vm.stop()


def _booted(vm: LabVM) -> None:
    state = vm.run("/usr/bin/systemctl", "is-system-running", "--wait", timeout=300,
                   check=False).stdout.strip()
    assert state in ("running", "degraded"), vm.console_tail()


def _records(vm: LabVM) -> list[dict[str, object]]:
    out = vm.sh(f"cat {AUDIT}/*.jsonl 2>/dev/null || cat {AUDIT}/* ", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _actions(vm: LabVM) -> list[str]:
    return [str(r["event"]["action"]) for r in _records(vm)]  # type: ignore[index]


def _status(vm: LabVM) -> dict[str, object]:
    out = vm.run("/usr/bin/edgeguard", "status", "--json", check=False)
    assert out.rc in (0, 1), out.stderr
    row: dict[str, object] = json.loads(out.stdout.splitlines()[0])
    return row


def _wait(predicate: object, what: str, timeout: float = 90) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _active(vm: LabVM) -> bool:
    return vm.run("/usr/bin/systemctl", "is-active", "edgeguard.service",
                  check=False).stdout.strip() == "active"


def test_0_package_layout(deb: Path) -> None:
    """What the guest's minbase excludes (man pages, docs) is checked in the archive."""
    listing = subprocess.run(["/usr/bin/dpkg-deb", "-c", str(deb)], check=True,
                             capture_output=True, text=True).stdout
    names = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for path in ("/usr/bin/edgeguard", "/usr/lib/edgeguard/bin/edgeguard",
                 "/usr/lib/edgeguard/pyvenv.cfg", "/usr/lib/udev/rules.d/61-edgeguard-media.rules",
                 "/usr/lib/systemd/system/edgeguard.service",
                 "/usr/lib/systemd/system/edgeguard-ship.service",
                 "/usr/share/man/man8/edgeguard.8.gz", "/usr/share/doc/edgeguard/copyright",
                 "/usr/share/doc/edgeguard/policy.md", "/etc/edgeguard/policy.yaml"):
        assert path in names, path
    assert any(n.endswith(".cpython-311.pyc") and "/edgeguard/daemon/" in n for n in names)
    control = subprocess.run(["/usr/bin/dpkg-deb", "-f", str(deb), "Depends"], check=True,
                             capture_output=True, text=True).stdout
    for dep in ("python3 (>= 3.11~)", "udev", "nftables", "libudev1"):
        assert dep in control
    conffiles = subprocess.run(["/usr/bin/dpkg-deb", "--ctrl-tarfile", str(deb)], check=True,
                               capture_output=True).stdout
    assert b"/etc/edgeguard/policy.yaml" in conffiles


def test_1_apt_get_install_starts_the_notify_unit_in_monitor_mode(guest: LabVM) -> None:
    done = guest.sh(f"cd {DEB_DIR} && {APT_ENV} apt-get install -y ./edgeguard_*.deb 2>&1",
                    timeout=600, check=False)
    assert done.rc == 0, done.stdout
    _wait(lambda: _active(guest), "edgeguard.service active")
    show = guest.run("/usr/bin/systemctl", "show", "edgeguard.service", "-p", "Type",
                     "-p", "WatchdogUSec", "-p", "UnitFileState", "-p", "NotifyAccess").stdout
    assert "Type=notify" in show
    assert "WatchdogUSec=30s" in show
    assert "UnitFileState=enabled" in show
    status = _status(guest)
    assert status["edgeguard"]["mode"] == "monitor"  # type: ignore[index]
    assert status["edgeguard"]["degraded"] == {}  # type: ignore[index]
    text = guest.run("/usr/bin/edgeguard", "status", check=False)
    assert text.rc == 0, text.stdout + text.stderr
    assert "monitor mode: decisions are audited, nothing is enforced" in text.stdout
    check = guest.run("/usr/bin/edgeguard", "check", check=False)
    assert check.rc == 0, check.stderr
    assert "/etc/edgeguard/policy.yaml" in check.stdout
    started = [r for r in _records(guest) if r["event"]["action"] == "edgeguard-started"]  # type: ignore[index]
    assert "started in monitor mode" in str(started[0]["message"])


def test_2_hot_plugged_stick_is_read_only_and_audited(guest: LabVM, tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "stick.img", [sticks.Part("vfat", 40)])
    guest.plug_stick(img, serial=SERIAL)
    disk = f"/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_{SERIAL}-0:0"
    _wait(lambda: guest.run("/usr/bin/test", "-b", disk + "-part1", check=False).rc == 0,
          "the stick's partition")
    for dev in (disk, disk + "-part1"):
        assert guest.run("/usr/sbin/blockdev", "--getro", dev).stdout.strip() == "1"

    def audited() -> bool:
        return any(r["event"]["action"] == "usb-read-only" and SERIAL in json.dumps(r)  # type: ignore[index]
                   for r in _records(guest))

    _wait(audited, "the usb-read-only audit record")


def test_3_reload_rereads_and_a_broken_dropin_is_refused(guest: LabVM) -> None:
    before = _status(guest)["edgeguard"]
    guest.sh("mkdir -p /etc/edgeguard/policy.d && "
             "printf 'version: 1\\naudit:\\n  aggregate_window: 30s\\n' "
             "> /etc/edgeguard/policy.d/50-lab.yaml && systemctl reload edgeguard")
    _wait(lambda: _status(guest)["edgeguard"]["reloads"] == 1, "the reload")  # type: ignore[index]
    after = _status(guest)["edgeguard"]
    assert after["policy"]["digest"] != before["policy"]["digest"]  # type: ignore[index]
    assert "/etc/edgeguard/policy.d/50-lab.yaml" in after["policy"]["sources"]  # type: ignore[index]
    guest.sh("printf 'media:\\n  enabled: perhaps\\n' > /etc/edgeguard/policy.d/60-broken.yaml"
             " && systemctl reload edgeguard")
    _wait(lambda: _status(guest)["edgeguard"]["reload_failures"] == 1, "the refusal")  # type: ignore[index]
    kept = _status(guest)["edgeguard"]
    assert kept["policy"]["digest"] == after["policy"]["digest"]  # type: ignore[index]
    assert _active(guest)
    assert "policy-reload-failed" in _actions(guest)
    journal = guest.run("/usr/bin/journalctl", "-u", "edgeguard", "--no-pager", "-o", "cat").stdout
    assert "policy reload refused" in journal
    assert "60-broken.yaml:2" in journal
    assert '"ready"' in journal or "ready" in journal
    guest.run("/bin/rm", "/etc/edgeguard/policy.d/60-broken.yaml")


def test_4_reboot_brings_it_back_and_the_chain_continues(guest: LabVM) -> None:
    starts = _actions(guest).count("edgeguard-started")
    seconds = guest.poweroff()
    guest.start()
    _booted(guest)
    print(f"\nedgelab-sd: poweroff {seconds:.0f} s, boot {guest.boot_seconds:.0f} s",
          file=sys.stderr)
    _wait(lambda: _active(guest), "edgeguard.service active after the reboot")
    actions = _actions(guest)
    assert actions.count("edgeguard-started") == starts + 1
    assert "edgeguard-stopped" in actions
    verify = guest.run("/usr/bin/edgeguard", "audit", "verify", AUDIT, check=False)
    assert verify.rc == 0, verify.stdout + verify.stderr


def test_5_purge_leaves_no_unit_or_rule_but_keeps_the_audit_trail(guest: LabVM) -> None:
    # writes drop-ins and restarts the service (waits for READY=1: slow in TCG)
    guest.run("/usr/bin/edgeguard", "install", "--profile", "gateway", timeout=400)
    done = guest.sh(f"{APT_ENV} apt-get purge -y edgeguard 2>&1", timeout=300, check=False)
    assert done.rc == 0, done.stdout
    left = guest.sh("ls -d /usr/lib/systemd/system/edgeguard* /etc/systemd/system/edgeguard* "
                    "/etc/systemd/system/*/edgeguard* /usr/lib/udev/rules.d/*edgeguard* "
                    "/etc/udev/rules.d/*edgeguard* /etc/edgeguard /usr/lib/edgeguard "
                    "/usr/bin/edgeguard /var/lib/edgeguard 2>/dev/null || true").stdout
    assert left.strip() == ""
    units = guest.run("/usr/bin/systemctl", "list-unit-files", "edgeguard*", "--no-legend",
                      check=False).stdout
    assert units.strip() == ""
    assert guest.run("/usr/bin/systemctl", "is-active", "edgeguard", check=False).rc != 0
    assert "edgeguard-stopped" in _actions(guest)  # the audit trail stays
