"""Issue 23 (start-up: "bytecode precompiled at install"): packaging/check_bytecode.py,
which scripts/package.sh runs on every .deb it builds, tells bytecode that Python uses
from bytecode it would ignore. The package once shipped timestamp-checked .pyc files
whose sources dpkg-deb had re-dated to SOURCE_DATE_EPOCH: all 166 stale, so every start
compiled every module again (and could not save the result under a read-only /usr)."""

from __future__ import annotations

import compileall
import importlib.util
import os
import py_compile
import runpy
from pathlib import Path

from tests.conftest import ROOT

CHECK = runpy.run_path(str(ROOT / "packaging" / "check_bytecode.py"))
problems = CHECK["problems"]


def _package(tmp_path: Path, mode: py_compile.PycInvalidationMode) -> Path:
    package = tmp_path / "edgeguard"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "sub" / "mod.py").write_text("def f() -> int:\n    return 2\n")
    assert compileall.compile_dir(package, quiet=1, invalidation_mode=mode)
    return package


def _redate(package: Path, epoch: int) -> None:
    """What dpkg-deb does with SOURCE_DATE_EPOCH: every time clamped to it."""
    for path in package.rglob("*.py"):
        os.utime(path, (epoch, epoch))


def test_timestamp_bytecode_goes_stale_when_the_sources_are_redated(tmp_path: Path) -> None:
    package = _package(tmp_path, py_compile.PycInvalidationMode.TIMESTAMP)
    assert problems(package) == []
    _redate(package, 1_700_000_000)
    found = problems(package)
    assert len(found) == 2
    assert all("modification time" in line for line in found)


def test_hash_checked_bytecode_survives_redating_but_not_an_edit(tmp_path: Path) -> None:
    package = _package(tmp_path, py_compile.PycInvalidationMode.CHECKED_HASH)
    _redate(package, 1_700_000_000)
    assert problems(package) == []
    (package / "sub" / "mod.py").write_text("def f() -> int:\n    return 3\n")
    assert [line for line in problems(package) if "hash differs" in line] != []


def test_a_module_without_bytecode_is_named(tmp_path: Path) -> None:
    package = _package(tmp_path, py_compile.PycInvalidationMode.CHECKED_HASH)
    (package / "late.py").write_text("X = 1\n")
    cached = Path(importlib.util.cache_from_source(str(package / "late.py"))).name
    assert problems(package) == [f"{package / 'late.py'}: no {cached}"]
