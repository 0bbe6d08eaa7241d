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
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeguard.fsutil import UnsafeFileError, open_trusted, read_bounded
from edgeguard.policy.shipped import PROFILES, shipped_policy

if TYPE_CHECKING:  # start-up: PyYAML, the converter and the model load only when a
    # policy is parsed (the shipped one comes precompiled: edgeguard.policy.precompiled)
    from edgeguard.policy.convert import PolicyIssue
    from edgeguard.policy.model import Policy
    from edgeguard.policy.yamltree import Mark, Node, YamlLimits

__all__ = [
    "ETC_DIR",
    "PROFILES",
    "LoadedPolicy",
    "PolicyError",
    "default_layers",
    "load_policy",
    "load_texts",
    "read_layer",
    "shipped_policy",
]

ETC_DIR = Path("/etc/edgeguard")


class PolicyError(Exception):
    """A policy that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.mark.file, i.mark.line,
                                                          i.mark.column)))
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A policy that loaded, the digest of its layers and their names."""

    policy: Policy
    digest: str  # sha256 over the layers' bytes, in order
    sources: tuple[str, ...]


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
                limits: YamlLimits | None = None) -> LoadedPolicy:
    """Load the embedded default, then ``profile``, then ``files`` on top.

    ``require_safe`` (default: when running as root) refuses files that anyone but
    root could have written, or that sit in a directory anyone but root could write
    (from ``/`` down). Raises :class:`PolicyError` with every issue (file, line,
    field, message). ``limits``: :data:`~edgeguard.policy.yamltree.DEFAULT_LIMITS`
    when not given.
    """
    if require_safe is None:
        require_safe = os.geteuid() == 0
    layers: list[tuple[str, bytes]] = []
    issues: list[PolicyIssue] = []
    for path in files:
        from edgeguard.policy.convert import PolicyIssue  # noqa: PLC0415 - see the top

        try:
            layers.append((str(path), read_layer(path, require_safe, limits)))
        except UnsafeFileError as exc:
            issues.append(PolicyIssue(_nowhere(str(path)), "", f"refusing to load: {exc.reason}"))
        except OSError as exc:
            issues.append(PolicyIssue(_nowhere(str(path)), "", f"cannot read: {exc.strerror}"))
    return load_texts(layers, profile, limits, issues)


def load_texts(texts: Sequence[tuple[str, bytes]], profile: str | None = None,
               limits: YamlLimits | None = None,
               issues: Sequence[PolicyIssue] = (), *,
               precompiled: bool = True) -> LoadedPolicy:
    """:func:`load_policy` for layers already read: ``(name, bytes)`` in order, on top
    of the embedded default and ``profile``. Raises only :class:`PolicyError`.

    With no layer of its own and no issue, the shipped policy comes from
    :mod:`edgeguard.policy.precompiled` when that is current (``precompiled=False``:
    always parse and validate the YAML)."""
    layers: list[tuple[str, bytes]] = [shipped_policy("default")]
    if profile is not None and profile != "default":
        layers.append(shipped_policy(profile))
    if precompiled and not texts and not issues:
        from edgeguard.policy.precompiled import shipped_policy_object  # noqa: PLC0415

        ready = shipped_policy_object(profile, layers)
        if ready is not None:
            return LoadedPolicy(ready, _digest(layers), tuple(name for name, _ in layers))
    layers.extend(texts)
    return _parse_layers(layers, len(layers) - len(texts), limits, issues)


def _parse_layers(layers: list[tuple[str, bytes]], shipped: int, limits: YamlLimits | None,
                  issues: Sequence[PolicyIssue]) -> LoadedPolicy:
    """Parse, merge and validate ``layers`` (the first ``shipped`` are embedded)."""
    from edgeguard.policy.convert import (  # noqa: PLC0415 - see the imports at the top
        PolicyIssue,
        check_rules,
        convert_section,
    )
    from edgeguard.policy.model import Policy  # noqa: PLC0415
    from edgeguard.policy.yamltree import (  # noqa: PLC0415
        DEFAULT_LIMITS,
        PolicySyntaxError,
        merge,
        parse_yaml,
    )

    limits = limits or DEFAULT_LIMITS
    found = list(issues)
    tree: Node | None = None
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
    return LoadedPolicy(policy, _digest(layers), tuple(name for name, _ in layers))


def _digest(layers: Sequence[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for _name, data in layers:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=len(PROFILES))
def _shipped_tree(name: str, data: bytes) -> Node:
    """The embedded layers parse once per process (merge and convert only read trees)."""
    from edgeguard.policy.yamltree import parse_yaml  # noqa: PLC0415

    return parse_yaml(data, name)


def read_layer(path: Path, require_safe: bool, limits: YamlLimits | None = None) -> bytes:
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
        if limits is None:
            from edgeguard.policy.yamltree import DEFAULT_LIMITS  # noqa: PLC0415

            limits = DEFAULT_LIMITS
        return read_bounded(fd, limits.max_bytes + 1)
    finally:
        os.close(fd)


def _nowhere(file: str) -> Mark:
    from edgeguard.policy.yamltree import Mark  # noqa: PLC0415

    return Mark(file, 0, 0)
