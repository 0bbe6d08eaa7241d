"""Build hook: the hot path of ``edgeguard replay`` and the capture workers compiled with
mypyc (docs/network-capture.md, "Performance"). Everything else is in pyproject.toml.

The compiled modules are an explicit list (:data:`COMPILED`): a module added to
``edgeguard/net`` later stays interpreted until it is listed here and compiles cleanly.
With ``EDGEGUARD_PURE=1``, without mypyc or without a C compiler the package builds as
pure Python and behaves the same (CI runs the network tests both ways).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import setup

#: Modules compiled with mypyc, by path (the interpreted rest imports them as usual).
#: Left interpreted: detect/base.py (a runtime-checkable Protocol), config.py, service.py,
#: shed.py, capture.py, worker.py (mypyc rejects them or they are off the hot path: the
#: capture worker's per-frame work is ringblock.py, per block and per batch is theirs), and
#: detect/evidence.py: findings cross the worker socket pickled, and a frozen dataclass
#: compiled with mypyc cannot be unpickled (tests/unit/net/test_findings_cross_process.py).
COMPILED = [
    "edgeguard/net/bpf.py",
    "edgeguard/net/bpfjit.py",
    "edgeguard/net/decode.py",
    "edgeguard/net/filter.py",
    "edgeguard/net/filter_aot.py",
    "edgeguard/net/frameloop.py",
    "edgeguard/net/inspect.py",
    "edgeguard/net/linktype.py",
    "edgeguard/net/packet.py",
    "edgeguard/net/pcapfile.py",
    "edgeguard/net/replay.py",
    "edgeguard/net/ringblock.py",
    *(f"edgeguard/net/detect/{name}.py" for name in (
        "arp", "bittorrent", "bt_flows", "bt_handshake", "bt_signatures", "chain",
        "common", "flood", "intel", "registry", "scan", "scan_decoy", "scan_report",
        "scan_probe", "scan_state", "sweep")),
]


def _compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(os.environ.get("CC", cc).split()[0]) is not None


def ext_modules() -> list[object]:
    if os.environ.get("EDGEGUARD_PURE") == "1":
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 (a build-time dependency)
    except ImportError:
        print("edgeguard: mypyc not available, building pure Python", file=sys.stderr)
        return []
    if not _compiler():
        print("edgeguard: no C compiler, building pure Python", file=sys.stderr)
        return []
    return list(mypycify(COMPILED, opt_level="3", multi_file=True))


setup(ext_modules=ext_modules())
