"""Hardware-lab fixtures: one QEMU guest per test session, state reset after every test.

The guest boots Debian's kernel with the current working tree shared read-only at /src,
so every test runs the code under test, not a copy baked into the image. Booting costs
~30 s in TCG, hence one boot per session; ``lab`` undoes what a test did to the guest
(sticks, processes, mappings, mounts, netns, hwsim, udev rules, nftables) so tests stay
independent of their order.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hardware" / "lab"))

from edgelab import image  # noqa: E402
from edgelab.vm import LabVM, qemu_binary  # noqa: E402

RESET = r"""
for m in $(awk '$2 ~ "^/mnt" {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
for d in /dev/mapper/*; do
  n=$(basename "$d"); [ "$n" = control ] || cryptsetup close "$n" 2>/dev/null || true
done
for ns in $(ip netns list | cut -d' ' -f1); do ip netns delete "$ns"; done
rm -f /etc/udev/rules.d/*.rules
udevadm control --reload
rmmod mac80211_hwsim 2>/dev/null || true
nft flush ruleset
ip link del wg0 2>/dev/null || true
rm -rf /tmp/lab /var/lib/edgeguard /run/edgeguard
mkdir -p /tmp/lab
udevadm settle --timeout=30
"""


def _missing_tools() -> list[str]:
    need = ["mmdebstrap", "cpio", "zstd", "depmod", "sfdisk", "mkfs.vfat", "mkfs.ext4",
            "cryptsetup"]
    missing = [t for t in need if shutil.which(t) is None
               and not Path("/usr/sbin", t).exists() and not Path("/sbin", t).exists()]
    if qemu_binary() is None:
        missing.append("qemu-system-x86_64")
    return missing


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabVM]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (image build)")
    missing = _missing_tools()
    if missing:
        pytest.fail(f"lab tools missing (install ci/apt.d/lab.txt): {missing}")
    t0 = time.monotonic()
    img = image.build()
    built = time.monotonic() - t0
    vm = LabVM(img, share=ROOT, workdir=tmp_path_factory.mktemp("labvm"))
    vm.start()
    reset(vm)  # the same clean state the first test gets as every later one
    print(f"\nedgelab: image {img.key} ready in {built:.0f} s, guest up in "
          f"{vm.boot_seconds:.0f} s", file=sys.stderr)
    try:
        yield vm
    finally:
        vm.stop()


def reset(vm: LabVM) -> None:
    vm.kill_all(sorted(vm.spawned))
    vm.unplug_all()
    vm.sh(RESET, timeout=120)


@pytest.fixture
def lab(lab_vm: LabVM) -> Iterator[LabVM]:
    """The session's guest, clean before and after the test."""
    yield lab_vm
    reset(lab_vm)
