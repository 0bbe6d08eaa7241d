"""Load a policy from layers: the embedded default, a profile, then overrides.

Layers merge mapping by mapping (lists replace), and every value keeps the file and
line it came from, so errors name the file that is wrong. Every error is reported at
once; a policy with any error is not used (the daemon keeps its running policy).

A file is read through one descriptor: opened with ``O_NOFOLLOW`` after every directory
on its way was checked (as root, :func:`edgeguard.fsutil.open_trusted`), checked with
``fstat``, read no further than the size limit, then parsed within the limits of
:class:`edgeguard.policy.yamltree.YamlLimits`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeguard.fsutil import UnsafeFileError, open_trusted, read_bounded
from edgeguard.policy.convert import PolicyIssue, check_rules, convert_section
from edgeguard.policy.model import Policy
from edgeguard.policy.yamltree import (
    DEFAULT_LIMITS,
    Mark,
    Node,
    PolicySyntaxError,
    YamlLimits,
    merge,
    parse_yaml,
)

__all__ = [
    "ETC_DIR",
    "LoadedPolicy",
    "PolicyError",
    "default_layers",
    "load_policy",
    "load_texts",
    "read_layer",
    "shipped_policy",
]

ETC_DIR = Path("/etc/edgeguard")
PROFILES = ("default", "gateway", "kiosk")


class PolicyError(Exception):
    """A policy that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.mark.file, i.mark.line,
                                                          i.mark.column)))
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    digest: str  # sha256 over the layers' bytes, in order
    sources: tuple[str, ...]


def shipped_policy(profile: str) -> tuple[str, bytes]:
    """The text of a shipped policy (``rules/<profile>.yaml``, embedded in the package)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    resource = importlib.resources.files("edgeguard") / "rules" / f"{profile}.yaml"
    return f"<embedded {profile}.yaml>", resource.read_bytes()


def default_layers(etc_dir: Path = ETC_DIR) -> list[Path]:
    """The admin's overrides: ``/etc/edgeguard/policy.yaml`` then ``policy.d/*.yaml``."""
    layers = []
    main = etc_dir / "policy.yaml"
    if main.exists():
        layers.append(main)
    drop_in = etc_dir / "policy.d"
    if drop_in.is_dir():
        layers.extend(sorted(drop_in.glob("*.yaml")))
    return layers


def load_policy(files: Sequence[Path] = (), profile: str | None = None,
                require_safe: bool | None = None,
                limits: YamlLimits = DEFAULT_LIMITS) -> LoadedPolicy:
    """Load the embedded default, then ``profile``, then ``files`` on top.

    ``require_safe`` (default: when running as root) refuses files that anyone but
    root could have written, or that sit in a directory anyone but root could write
    (from ``/`` down). Raises :class:`PolicyError` with every issue (file, line,
    field, message).
    """
    if require_safe is None:
        require_safe = os.geteuid() == 0
    layers: list[tuple[str, bytes]] = []
    issues: list[PolicyIssue] = []
    for path in files:
        try:
            layers.append((str(path), read_layer(path, require_safe, limits)))
        except UnsafeFileError as exc:
            issues.append(PolicyIssue(_nowhere(str(path)), "", f"refusing to load: {exc.reason}"))
        except OSError as exc:
            issues.append(PolicyIssue(_nowhere(str(path)), "", f"cannot read: {exc.strerror}"))
    return load_texts(layers, profile, limits, issues)


def load_texts(texts: Sequence[tuple[str, bytes]], profile: str | None = None,
               limits: YamlLimits = DEFAULT_LIMITS,
               issues: Sequence[PolicyIssue] = ()) -> LoadedPolicy:
    """:func:`load_policy` for layers already read: ``(name, bytes)`` in order, on top
    of the embedded default and ``profile``. Raises only :class:`PolicyError`."""
    layers: list[tuple[str, bytes]] = [shipped_policy("default")]
    if profile is not None and profile != "default":
        layers.append(shipped_policy(profile))
    layers.extend(texts)
    found = list(issues)
    tree: Node | None = None
    shipped = len(layers) - len(texts)
    for index, (name, data) in enumerate(layers):
        try:
            node = _shipped_tree(name, data) if index < shipped else parse_yaml(data, name, limits)
        except PolicySyntaxError as exc:
            found.append(PolicyIssue(exc.mark, "", exc.message))
            continue
        tree = node if tree is None else merge(tree, node)
    if found:
        raise PolicyError(found)
    assert tree is not None
    policy, more = convert_section(Policy, tree)
    more.extend(check_rules(tree))
    if more or policy is None:
        raise PolicyError(more)
    digest = hashlib.sha256()
    for _name, data in layers:
        digest.update(hashlib.sha256(data).digest())
    return LoadedPolicy(policy, digest.hexdigest(), tuple(name for name, _ in layers))


@functools.lru_cache(maxsize=len(PROFILES))
def _shipped_tree(name: str, data: bytes) -> Node:
    """The embedded layers parse once per process (merge and convert only read trees)."""
    return parse_yaml(data, name)


def read_layer(path: Path, require_safe: bool, limits: YamlLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of one policy file, no more than one past ``limits.max_bytes`` (so the
    parser can say it is too large without an 18 MB read). ``require_safe``: through
    :func:`open_trusted`; otherwise any regular file the caller can read."""
    if require_safe:
        fd = open_trusted(path)
    else:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError("not a regular file")
        return read_bounded(fd, limits.max_bytes + 1)
    finally:
        os.close(fd)


def _nowhere(file: str) -> Mark:
    return Mark(file, 0, 0)
