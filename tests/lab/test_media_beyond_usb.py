"""Issue 18 on a real kernel: every removable medium, not only USB sticks.

One guest (the session's), many devices: a USB stick, an SD card in the built-in sdhci
reader (card inserted into an empty slot, as on a laptop), a USB DVD drive (QEMU's
scsi-cd) and an NVMe disk on the PCI bus (a fixed, internal disk: the positive control
the rules must leave alone). Each attempt is made as root and as a pupil in the `disk`
and `cdrom` groups (setpriv, no capabilities). Proof is the backing image's SHA-256
before and after, on the host.

The guest's udevd runs with --resolve-names=never and has no systemd package, so the
stock Debian node permissions (50-udev-default: block and sg nodes root:disk 0660,
optical root:cdrom) and 70-uaccess's tags are installed from STOCK below, with numeric
groups, before edgeguard's rules.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from edgelab import sticks
from edgelab.daemon import SOCKET, GuestDaemon, install_udev_rules
from edgelab.daemon import ecs_field as field
from edgelab.vm import LabVM

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
RULES = ["61-edgeguard-media.rules", "72-edgeguard-media-uaccess.rules"]
DISK_GID, CDROM_GID = 6, 24
PUPIL = ("/usr/bin/setpriv", "--reuid", "4242", "--regid", "4242",
         "--groups", f"{DISK_GID},{CDROM_GID}", "--inh-caps=-all", "--bounding-set=-all")
#: Debian's stock permissions and uaccess tags (50-udev-default, 70-uaccess), numeric.
STOCK = f"""\
SUBSYSTEM=="block", GROUP="{DISK_GID}", MODE="0660"
SUBSYSTEM=="block", KERNEL=="sr[0-9]*", GROUP="{CDROM_GID}", MODE="0660"
SUBSYSTEM=="scsi_generic", GROUP="{DISK_GID}", MODE="0660"
SUBSYSTEM=="scsi_generic", SUBSYSTEMS=="scsi", ATTRS{{type}}=="4|5", GROUP="{CDROM_GID}"
"""
UACCESS = """\
SUBSYSTEM=="block", ENV{ID_CDROM}=="1", TAG+="uaccess"
SUBSYSTEM=="scsi_generic", SUBSYSTEMS=="scsi", ATTRS{type}=="4|5", TAG+="uaccess"
"""
#: sg_raw WRITE(10) of one block at LBA 0 from /tmp/blk.
WRITE10 = ("2a", "00", "00", "00", "00", "00", "00", "00", "01", "00")


def install_stock(lab: LabVM) -> None:
    lab.run("/bin/mkdir", "-p", "/etc/udev/rules.d")
    lab.put("/etc/udev/rules.d/50-lab-stock-perms.rules", STOCK)
    lab.put("/etc/udev/rules.d/70-uaccess.rules", UACCESS)
    lab.run("/usr/bin/udevadm", "control", "--reload")
    lab.sh("head -c 2048 /dev/urandom > /tmp/blk && chmod 0644 /tmp/blk && modprobe sg")


def settle(lab: LabVM, path: str, timeout: float = 90) -> None:
    lab.sh(f"i=0; while [ ! -e {path} ] && [ $i -lt {int(timeout * 5)} ]; do sleep 0.2; "
           f"i=$((i+1)); done; udevadm settle --timeout=60; test -e {path}",
           timeout=timeout + 70)


def stick_node(lab: LabVM, serial: str) -> str:
    out = lab.run("/usr/bin/python3", "/src/hardware/lab/tools/blockinfo.py", serial, "60",
                  "0", timeout=120)
    return str(json.loads(out.stdout)["disk"]["node"])


def passthrough_nodes(lab: LabVM, node: str) -> list[str]:
    name = node.removeprefix("/dev/")
    out = lab.sh(f"ls /sys/class/block/{name}/device/scsi_generic "
                 f"/sys/class/block/{name}/device/bsg 2>/dev/null | grep -v ':$' || true")
    names = out.stdout.split()
    return [f"/dev/{n}" if n.startswith("sg") else f"/dev/bsg/{n}" for n in names if n]


def sg_write(lab: LabVM, dev: str, *, pupil: bool, size: int = 512) -> tuple[int, str]:
    argv = (*(PUPIL if pupil else ()), "/usr/bin/sg_raw", "-s", str(size), "-i", "/tmp/blk",
            dev, *WRITE10)
    res = lab.run(*argv, check=False, timeout=60)
    return res.rc, res.stdout + res.stderr


def dd_write(lab: LabVM, dev: str, *, pupil: bool = False) -> int:
    argv = (*(PUPIL if pupil else ()), "/bin/dd", "if=/tmp/blk", f"of={dev}", "bs=512",
            "count=1", "oflag=direct", "conv=notrunc")
    return lab.run(*argv, check=False).rc


def current_tags(lab: LabVM, node: str) -> set[str]:
    """udev's CURRENT_TAGS (TAGS is sticky: it keeps a tag a later rule removed)."""
    for line in lab.run("/usr/bin/udevadm", "info", node).stdout.splitlines():
        if line.startswith("E: CURRENT_TAGS="):
            return set(line.split("=", 1)[1].split(":")) - {""}
    return set()


def sysfs_ro(lab: LabVM, node: str) -> int:
    name = node.removeprefix("/dev/")
    return int(lab.run("/bin/cat", f"/sys/class/block/{name}/ro").stdout)


def test_passthrough_writes_beneath_blkroset_until_the_rules_close_it(
        lab: LabVM, tmp_path: Path) -> None:
    """Daemon down. Stock Debian: a BLKROSET stick is still written through SG_IO by a
    `disk`-group pupil (/dev/sgN) and by root (/dev/bsg). With edgeguard's rules the
    pupil has no node to open; root still can (CAP_SYS_RAWIO, documented)."""
    install_stock(lab)
    ctrl = sticks.make_stick(tmp_path / "ctrl.img", whole="vfat", size_mib=16)
    before = sticks.sha256(ctrl)
    lab.plug_stick(ctrl, serial="EGSGCTRL")
    node = stick_node(lab, "EGSGCTRL")
    lab.run("/usr/sbin/blockdev", "--setro", node)
    assert sysfs_ro(lab, node) == 1
    assert dd_write(lab, node) != 0
    sg = next(n for n in passthrough_nodes(lab, node) if n.startswith("/dev/sg"))
    rc, out = sg_write(lab, sg, pupil=True)
    assert rc == 0, out
    assert sticks.sha256(ctrl) != before, "pupil's SG_IO WRITE(10) beneath BLKROSET"

    install_udev_rules(lab, RULES)
    img = sticks.make_stick(tmp_path / "prot.img", whole="vfat", size_mib=16)
    before = sticks.sha256(img)
    lab.plug_stick(img, serial="EGSGPROT")
    node = stick_node(lab, "EGSGPROT")
    assert sysfs_ro(lab, node) == 1
    nodes = passthrough_nodes(lab, node)
    assert any(n.startswith("/dev/sg") for n in nodes)
    assert any(n.startswith("/dev/bsg/") for n in nodes)
    for dev in (node, *nodes):
        rc, out = sg_write(lab, dev, pupil=True)
        assert rc != 0, (dev, out)
        assert "Permission denied" in out, (dev, out)
        mode = lab.run("/usr/bin/stat", "-c", "%a %u", dev).stdout.split()
        assert mode[1] == "0", (dev, mode)
        assert int(mode[0], 8) & 0o026 == 0, (dev, mode)
    assert dd_write(lab, node, pupil=True) != 0
    assert dd_write(lab, node) != 0
    assert sticks.sha256(img) == before
    # What the rules cannot stop: root with CAP_SYS_RAWIO (docs/media.md, known limits).
    rc, out = sg_write(lab, nodes[0], pupil=False)
    assert rc == 0, out
    assert sticks.sha256(img) != before


def test_optical_drive_has_no_burn_path(lab: LabVM, tmp_path: Path) -> None:
    """A USB DVD drive: stock Debian lets a console pupil (cdrom group, uaccess) send
    WRITE(10) through /dev/sgN — it reaches the drive (QEMU's emulated drive answers
    with a sense). Under edgeguard's rules the node cannot be opened, the uaccess tag is
    gone and /dev/srN is read-only."""
    install_stock(lab)
    disc = tmp_path / "disc.iso"
    disc.write_bytes(b"\0" * (4 << 20))
    lab.plug_cdrom(disc, dev_id="dvd1", serial="EGDVDCTRL")
    settle(lab, "/dev/sr0")
    sg = lab.sh("ls /sys/class/block/sr0/device/scsi_generic").stdout.split()[0]
    rc, out = sg_write(lab, f"/dev/{sg}", pupil=True, size=2048)
    assert "Permission denied" not in out, out  # the command went to the drive
    assert "uaccess" in current_tags(lab, "/dev/sr0")
    lab.unplug("dvd1")
    lab.sh("i=0; while [ -e /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done")

    install_udev_rules(lab, RULES)
    before = sticks.sha256(disc)
    lab.plug_cdrom(disc, dev_id="dvd2", serial="EGDVDPROT")
    settle(lab, "/dev/sr0")
    info = lab.run("/usr/bin/udevadm", "info", "/dev/sr0").stdout
    assert "EDGEGUARD_MEDIA_KIND=optical" in info
    assert "uaccess" not in current_tags(lab, "/dev/sr0")
    assert sysfs_ro(lab, "/dev/sr0") == 1
    sg = lab.sh("ls /sys/class/block/sr0/device/scsi_generic").stdout.split()[0]
    assert "uaccess" not in current_tags(lab, f"/dev/{sg}")
    for dev in ("/dev/sr0", f"/dev/{sg}"):
        rc, out = sg_write(lab, dev, pupil=True, size=2048)
        assert rc != 0, (dev, out)
        assert "Permission denied" in out, (dev, out)
    assert sticks.sha256(disc) == before


def test_sd_card_read_only_internal_nvme_untouched(lab: LabVM, tmp_path: Path) -> None:
    """An SD card inserted into the built-in reader is read-only before it is readable,
    daemon down and daemon up (audited with kind sd); an internal NVMe disk on the PCI
    bus is not touched and takes the same write (positive control). With the daemon up,
    a phone (MTP) is de-authorised and recorded naming the device (one daemon start for
    both: each costs about a minute under TCG)."""
    install_stock(lab)
    install_udev_rules(lab, RULES)
    card = sticks.make_stick(tmp_path / "card.img", [sticks.Part("vfat", 12)], size_mib=16)
    nvme = tmp_path / "nvme.img"
    nvme.write_bytes(b"\0" * (16 << 20))
    before_card, before_nvme = sticks.sha256(card), sticks.sha256(nvme)
    lab.plug_nvme(nvme, dev_id="nvme1", serial="EGNVME01")
    lab.insert_card(card)
    try:
        settle(lab, "/dev/mmcblk0p1")
        settle(lab, "/dev/nvme0n1")
        for node in ("/dev/mmcblk0", "/dev/mmcblk0p1"):
            assert sysfs_ro(lab, node) == 1, node
            assert "EDGEGUARD_MEDIA_KIND=sd" in lab.run("/usr/bin/udevadm", "info",
                                                        node).stdout
            assert dd_write(lab, node) != 0
            assert dd_write(lab, node, pupil=True) != 0
        assert sysfs_ro(lab, "/dev/nvme0n1") == 0
        assert dd_write(lab, "/dev/nvme0n1") == 0
        assert sticks.sha256(nvme) != before_nvme, "the internal disk must stay writable"
        assert sticks.sha256(card) == before_card

        daemon = GuestDaemon(lab, "mode: monitor\nmedia:\n  mode: enforce\n")
        daemon.start()
        lab.eject_card()
        lab.sh("i=0; while [ -e /dev/mmcblk0 ] && [ $i -lt 100 ]; do sleep 0.2; "
               "i=$((i+1)); done")
        lab.insert_card(card)
        settle(lab, "/dev/mmcblk0p1")
        rec = daemon.wait_record(lambda r: field(r, "event.action") == "usb-read-only"
                                 and field(r, "volume.device_name") == "/dev/mmcblk0p1",
                                 timeout=90)
        assert field(rec, "edgeguard.media.kind") == "sd"
        assert field(rec, "volume.writable") in (False, "false")
        time.sleep(2)  # give a wrong verdict time to lift the flag
        assert sysfs_ro(lab, "/dev/mmcblk0p1") == 1
        assert dd_write(lab, "/dev/mmcblk0p1") != 0
        # a phone while the daemon runs: still de-authorised, and on record by name
        phone = tmp_path / "phone"
        phone.mkdir()
        lab.plug_usb("usb-mtp", dev_id="mtp3", rootdir=str(phone), readonly=False)
        iface = mtp_interface(lab)
        rec = daemon.wait_record(lambda r: field(r, "event.action") == "usb-mtp-blocked",
                                 timeout=90)
        assert field(rec, "edgeguard.usb.bus_path") == iface
        assert field(rec, "edgeguard.usb.vendor_id") == "46f4"
        assert "authorized 0" in lab.py(CLAIM, iface).stdout
        listing = daemon.edgeguard("media", "list", "--json", "--socket", SOCKET)
        assert '"sd"' in listing.stdout, listing.stdout + listing.stderr
        assert not any(field(r, "volume.device_name") == "/dev/nvme0n1"
                       for r in daemon.records())
        daemon.stop()
        assert sticks.sha256(card) == before_card
    finally:
        lab.eject_card()


def test_spoofed_exempt_serial_on_another_port_is_not_exempt(lab: LabVM,
                                                             tmp_path: Path) -> None:
    """The exemption names the port (ID_PATH) and the partition-table UUID. A clone of
    the exempt disk — same serial, same content, same UUID — on another port stays
    read-only, also when an old serial-keyed EDGEGUARD_MEDIA_EXEMPT=1 rule matches it; the
    exempt disk on its own port is writable (positive control)."""
    install_stock(lab)
    # two root ports free now (a device an earlier test of the session left may hold one)
    free = lab.free_usb2_ports()
    assert len(free) >= 2, f"need two free USB 2 root ports, have {free}"
    home, other = free[0], free[1]
    exempt = sticks.make_stick(tmp_path / "sys.img", [sticks.Part("ext4j", 12)], size_mib=16)
    clone = tmp_path / "clone.img"
    clone.write_bytes(exempt.read_bytes())
    lab.plug_stick(exempt, serial="EGSYSDISK1", port=home, dev_id="sys")
    node = stick_node(lab, "EGSYSDISK1")
    props = dict(line[3:].split("=", 1) for line in lab.run(
        "/usr/bin/udevadm", "info", node).stdout.splitlines() if line.startswith("E: "))
    id_path, ptuuid = props["ID_PATH"], props["ID_PART_TABLE_UUID"]
    lab.unplug("sys")
    lab.put("/etc/udev/rules.d/60-zz-edgeguard-exempt.rules",
            f'ENV{{ID_PATH}}=="{id_path}", ENV{{ID_PART_TABLE_UUID}}=="{ptuuid}", '
            f'ENV{{EDGEGUARD_MEDIA_EXEMPT_PORT}}="{id_path}"\n'
            'ENV{ID_SERIAL_SHORT}=="EGSYSDISK1", ENV{EDGEGUARD_MEDIA_EXEMPT}="1"\n')
    install_udev_rules(lab, RULES)
    before = sticks.sha256(clone)
    lab.plug_stick(clone, serial="EGSYSDISK1", port=other, dev_id="clone")
    node = stick_node(lab, "EGSYSDISK1")
    assert sysfs_ro(lab, node) == 1
    assert dd_write(lab, node) != 0
    lab.unplug("clone")
    assert sticks.sha256(clone) == before
    lab.sh("udevadm settle --timeout=30")
    before = sticks.sha256(exempt)
    lab.plug_stick(exempt, serial="EGSYSDISK1", port=home, dev_id="sys2")
    node = stick_node(lab, "EGSYSDISK1")
    assert sysfs_ro(lab, node) == 0
    assert dd_write(lab, node) == 0
    assert sticks.sha256(exempt) != before


CLAIM = """
import fcntl, pathlib, struct, sys
iface = (pathlib.Path("/sys/bus/usb/devices") / sys.argv[1]).resolve()
dev = iface.parent
bus, num = int((dev / "busnum").read_text()), int((dev / "devnum").read_text())
print("authorized", (iface / "authorized").read_text().strip())
with open(f"/dev/bus/usb/{bus:03d}/{num:03d}", "rb+", buffering=0) as f:
    try:
        fcntl.ioctl(f, 0x8004550F, struct.pack("I", int(sys.argv[1].rsplit(".", 1)[1])))
        print("claimed")
    except OSError as exc:
        print("refused", exc.errno)
"""


def mtp_interface(lab: LabVM) -> str:
    out = lab.sh("for i in $(seq 1 150); do for d in /sys/bus/usb/devices/*:*; do "
                 "[ \"$(cat $d/bInterfaceClass 2>/dev/null)\" = 06 ] && "
                 "{ basename $d; exit 0; }; done; sleep 0.2; done; exit 1", timeout=60)
    lab.sh("udevadm settle --timeout=60", timeout=90)
    return out.stdout.split()[0]


def test_phone_mtp_is_blocked_unless_allowed(lab: LabVM, tmp_path: Path) -> None:
    """A phone/camera (QEMU usb-mtp, still-image class 06): without edgeguard its
    interface can be claimed through usbfs, the path libmtp/gphoto2 write through; under
    the rules it is de-authorised (daemon down), the claim is refused and the shared
    directory is unchanged. The daemon's record: test_sd_card_read_only_..."""
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "DCIM.txt").write_text("photos\n")
    install_stock(lab)
    lab.plug_usb("usb-mtp", dev_id="mtp1", rootdir=str(phone), readonly=False)
    iface = mtp_interface(lab)
    out = lab.py(CLAIM, iface).stdout
    assert "authorized 1" in out, out
    assert "claimed" in out, out
    lab.unplug("mtp1")

    install_udev_rules(lab, RULES)
    lab.plug_usb("usb-mtp", dev_id="mtp2", rootdir=str(phone), readonly=False)
    iface = mtp_interface(lab)
    out = lab.py(CLAIM, iface).stdout
    assert "authorized 0" in out, out
    assert "claimed" not in out, out
    assert sorted(p.name for p in phone.iterdir()) == ["DCIM.txt"]
