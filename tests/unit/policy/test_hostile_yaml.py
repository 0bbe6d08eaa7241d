"""Hostile policy files (issue 16 §3): each refused with file:line and exit 2, in bounded
CPU time and memory. ``edgeguard check`` runs in a child with an address-space limit, so
a loader that expands an alias bomb dies instead of taking the machine with it.

Before the fix, on the same machine: the 377-byte alias bomb ran 60 s (killed) at
809 MB resident; 5,000 nested lists raised RecursionError; 18 MB ran for minutes.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeguard.policy.load import PolicyError, load_policy
from edgeguard.policy.yamltree import DEFAULT_LIMITS, PolicySyntaxError, YamlLimits, parse_yaml
from tests.conftest import ROOT, edgeguard_env

#: Bounds the child must stay within (the unit's MemoryMax is 512M).
ADDRESS_SPACE = 768 << 20
CPU_SECONDS = 15.0  # refusals take ~1 s of CPU (0.8 s of it is Python starting up)
WALL_SECONDS = 120.0  # six agents share two cores: wall time is the CPU bound's backstop
PEAK_RSS_KB = 160 << 10

BAD = ROOT / "tests" / "data" / "policies" / "bad"


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int
    stderr: str
    cpu_seconds: float
    peak_rss_kb: int


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


#: ``edgeguard check`` in the child, then its own peak resident set (VmHWM of the
#: process image after exec) on stderr: ``wait4``'s ru_maxrss also counts the pytest
#: parent's size that the forked child had before exec.
_PROBE = """
import sys
from edgeguard.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
with open("/proc/self/status") as status:
    hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
sys.stderr.write(f"\\nVMHWM {hwm}\\n")
sys.exit(code)
"""


def check(path: Path) -> Run:
    """``edgeguard check PATH`` in a child limited to ADDRESS_SPACE: its exit code, its
    own CPU time (``wait4`` on that child; RUSAGE_CHILDREN would add every child the
    test run reaped) and its own peak memory (VmHWM)."""
    proc = subprocess.Popen([sys.executable, "-c", _PROBE, "check", str(path)],
                            env=edgeguard_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_limit)  # noqa: PLW1509
    timer = threading.Timer(WALL_SECONDS, proc.kill)
    timer.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode == -signal.SIGKILL:
        pytest.fail(f"edgeguard check {path} ran past {WALL_SECONDS} s")
    found = re.search(r"^VMHWM (\d+)$", err, re.MULTILINE)
    assert found is not None, f"the child died before reporting its memory: {err[-500:]}"
    err = err[:found.start()].rstrip("\n") + "\n" if found.start() else ""
    return Run(proc.returncode, err, usage.ru_utime + usage.ru_stime, int(found.group(1)))


def assert_refused(run: Run, path: Path, line: str, message: str) -> None:
    """Exit 2, ``PATH:LINE:COLUMN: MESSAGE`` (``line`` a regex), within the bounds."""
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert re.search(f"^{re.escape(str(path))}:{line}:[0-9]+: .*{re.escape(message)}",
                     run.stderr, re.MULTILINE), run.stderr
    assert run.cpu_seconds < CPU_SECONDS
    assert run.peak_rss_kb < PEAK_RSS_KB


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def device(index: int) -> str:
    return (f"    - id: IT-{index:05d}\n      vendor_id: \"0951\"\n      product_id: \"1666\"\n"
            f"      serial: \"E0D55EA573DCF450E97C{index:06d}\"\n      size: 32GB\n"
            f"      description: Head of Year 9, encrypted IronKey number {index}\n")


def test_alias_bomb_is_refused_at_the_first_alias() -> None:
    path = BAD / "alias-bomb.yaml"
    assert path.stat().st_size < 500
    assert_refused(check(path), path, "3", "YAML aliases ('*a') are not supported")


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused(tmp_path: Path, style: str) -> None:
    if style == "flow":
        text, where = "media:\n  x: " + "[" * 5000 + "]" * 5000 + "\n", ":2:"
    else:
        text = "media:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(500))
        where = ":33:"
    run = check(write(tmp_path, "deep.yaml", text))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "RecursionError" not in run.stderr
    assert f"deep.yaml{where}" in run.stderr
    assert "nest" in run.stderr  # ours (block), or libyaml's "maximum nesting depth" (flow)
    assert run.cpu_seconds < CPU_SECONDS
    assert run.peak_rss_kb < PEAK_RSS_KB


def test_18_megabyte_policy_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = write(tmp_path, "huge.yaml",
                 "media:\n  trusted_devices:\n" + "".join(device(i) for i in range(90_000)))
    assert path.stat().st_size > 17_000_000
    run = check(path)
    # the first line the limit cuts is named
    assert_refused(run, path, "32635", "larger than the policy limit of 1048576 bytes")


def test_a_million_scalars_are_refused_by_count(tmp_path: Path) -> None:
    path = write(tmp_path, "flat.yaml", "network:\n  interfaces: [" + ",".join("e" * 500_000)
                 + "]\n")
    assert_refused(check(path), path, "2",
                   f"more than {DEFAULT_LIMITS.max_nodes} values in one file")


def test_python_object_tag_is_refused_by_name() -> None:
    path = BAD / "tag-python-object.yaml"
    assert_refused(check(path), path, "2",
                   "YAML tag !!python/object/apply:os.system is not supported")


def test_largest_policy_loads_within_bounds(tmp_path: Path) -> None:
    """1 MiB of trusted devices (5,438 entries): accepted, in bounded time and memory."""
    text, index = "media:\n  trusted_devices:\n", 0
    while len(text) + len(device(index)) <= DEFAULT_LIMITS.max_bytes:
        text, index = text + device(index), index + 1
    path = write(tmp_path, "big.yaml", text)
    run = check(path)
    assert run.returncode == 0, run.stderr
    assert run.cpu_seconds < 2 * CPU_SECONDS
    assert run.peak_rss_kb < PEAK_RSS_KB


def test_limits_are_configurable() -> None:
    text = "media:\n  trusted_devices:\n" + device(0)
    parse_yaml(text, "f")
    with pytest.raises(PolicySyntaxError, match="f:2:1: file is larger than the policy limit"):
        parse_yaml(text, "f", YamlLimits(max_bytes=10))
    with pytest.raises(PolicySyntaxError, match="f:3:5: nested deeper than 2 levels"):
        parse_yaml(text, "f", YamlLimits(max_depth=2))
    with pytest.raises(PolicySyntaxError, match="more than 5 values"):
        parse_yaml(text, "f", YamlLimits(max_nodes=5))


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n",  # a plain alias, no expansion at all
    "a: &x [*x]\n",  # a recursive one
    "a: !!set {x}\n",
    "a: !!binary aGk=\n",
    "a: !!python/name:os.system ''\n",
    "!!python/object:os.system {}\n",
    "a: !custom 1\n",
    "a: 1" + "0" * 5000 + "\n",
    "a: \udc80\n",  # a lone surrogate: str input that is no UTF-8
    "a: !!bool ''\n",  # found by the fuzz: KeyError from PyYAML's constructor
    "a: !!int ''\n",  # IndexError
    "a: !!float ''\n",  # IndexError
    "a: !!timestamp 2026-13-45\n",  # ValueError
])
def test_hostile_scalars_and_collections_are_typed_errors(text: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        parse_yaml(text, "f")
    assert str(info.value).startswith("f:1:") or str(info.value).startswith("f:2:")


def test_fifo_and_device_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(PolicyError, match="not a regular file"):
            load_policy([path], require_safe=False)
