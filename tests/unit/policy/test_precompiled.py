"""The shipped policies come precompiled (edgeguard.policy.precompiled, issue 23): the
committed module is current, it equals a fresh parse and validation of the YAML for
every profile, and a module that no longer matches its inputs is never used."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from edgeguard.policy import precompiled
from edgeguard.policy.load import PROFILES, load_policy, load_texts, shipped_policy
from tests.conftest import ROOT, edgeguard_env


def test_the_committed_module_is_current() -> None:
    """Regenerate with ``python -m edgeguard.policy.precompile --write``."""
    done = subprocess.run([sys.executable, "-m", "edgeguard.policy.precompile", "--check"],
                          capture_output=True, text=True, env=edgeguard_env(), cwd=ROOT,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_precompiled_equals_a_fresh_load(profile: str) -> None:
    layers = [shipped_policy("default")] + ([shipped_policy(profile)]
                                            if profile != "default" else [])
    ready = precompiled.shipped_policy_object(profile, layers)
    assert ready is not None  # current: the fast path is taken
    fresh = load_texts([], profile, precompiled=False)
    assert ready == fresh.policy
    assert load_texts([], profile) == fresh  # same digest and sources too
    parts = precompiled.shipped_network(profile)
    assert parts == (fresh.policy.network, fresh.policy.daemon.host_name)


def _stale(monkeypatch: pytest.MonkeyPatch, **change: object) -> None:
    real = precompiled._generated()
    fake = types.SimpleNamespace(SOURCES=real.SOURCES, PROFILES=real.PROFILES)
    for name, value in change.items():
        setattr(fake, name, value)
    monkeypatch.setattr(precompiled, "_generated", lambda: fake)


def test_a_changed_source_is_not_trusted(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """A source edited after generation (a default changed in net/config.py) changes the
    fingerprint: nothing precompiled is used, the YAML is parsed and validated."""
    real = precompiled._generated()
    for relative in real.SOURCES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(precompiled.PACKAGE_ROOT / relative, tmp_path / relative)
    monkeypatch.setattr(precompiled, "PACKAGE_ROOT", tmp_path)
    assert precompiled.shipped_network(None) is not None  # the same sources: used
    with (tmp_path / "net" / "config.py").open("a") as edited:
        edited.write("\n# a default changed here\n")
    assert precompiled.shipped_network(None) is None
    assert precompiled.shipped_policy_object(None, [shipped_policy("default")]) is None
    assert load_policy([], None).policy == load_texts([], None, precompiled=False).policy


def test_changed_yaml_is_not_trusted() -> None:
    """The fingerprint covers the shipped YAML's bytes."""
    name, data = shipped_policy("default")
    changed = data.replace(b"enabled: false", b"enabled: true", 1)
    assert changed != data
    assert precompiled.shipped_policy_object(None, [(name, changed)]) is None


def test_an_unreadable_source_means_no_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package without its sources (bytecode only) takes the slow path."""
    _stale(monkeypatch, SOURCES=("no/such/module.py",))
    assert precompiled.shipped_network("gateway") is None


def test_a_missing_module_means_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precompiled, "_generated", lambda: None)
    assert precompiled.shipped_network(None) is None
    assert load_policy([], "kiosk") == load_texts([], "kiosk", precompiled=False)
