"""The shipped policies, validated when the package is built instead of at every start.

Parsing and validating the embedded ``rules/default.yaml`` costs ~90 ms (PyYAML, the
converter, the whole model imported), more than a short command such as
``edgeguard replay small.pcap`` should take in all. The result depends only on the
shipped YAML and on the code that reads it, so it is computed once, ahead of time, by
``python -m edgeguard.policy.precompile --write`` into the package module
:mod:`edgeguard.policy._precompiled` (committed; ``scripts/package.sh`` ships it like
any other module). It holds, per profile, the pickled :class:`~edgeguard.policy.model.Policy`
and the pickled parts a command may need alone (``network``, ``daemon.host_name``:
unpickling them imports neither the model nor PyYAML), and a fingerprint of its inputs.

Trust and invalidation:

* It is never a runtime cache: nothing is written at run time and nothing is read from
  outside the package directory, which is as trusted as the code itself (a file another
  user could write would be a policy bypass; there is none).
* The fingerprint is SHA-256 over the shipped YAML of the profile's layers *and* the
  source of every edgeguard module that took part in loading them (the model, every
  ``config`` module, the converter, the value types, the finding catalogue...). A
  change to any of them makes the fingerprint differ, and the loader then parses and
  validates the YAML as before; a stale module is slow, never wrong. A package without
  the sources (bytecode only) takes the same slow path.
* Only the shipped layers are precompiled. Any file given (``--policy``,
  ``/etc/edgeguard``) makes the whole policy load, validate and report its errors
  exactly as before; a test checks that the precompiled policy equals a fresh load and
  that the committed module is current.
"""

from __future__ import annotations

import binascii
import hashlib
import importlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeguard.policy.shipped import shipped_policy

if TYPE_CHECKING:
    from edgeguard.net.config import NetworkConfig
    from edgeguard.policy.model import Policy

__all__ = ["MODULE", "PACKAGE_ROOT", "PARTS", "fingerprint", "shipped_network",
           "shipped_part", "shipped_policy_object"]

#: The parts pickled on their own (attribute paths into the policy).
PARTS = ("network", "daemon.host_name")
#: The generated module, next to this one.
MODULE = "edgeguard.policy._precompiled"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # .../edgeguard


def _layers(profile: str | None) -> list[tuple[str, bytes]]:
    layers = [shipped_policy("default")]
    if profile is not None and profile != "default":
        layers.append(shipped_policy(profile))
    return layers


def fingerprint(profile: str | None, sources: tuple[str, ...],
                layers: list[tuple[str, bytes]] | None = None) -> str | None:
    """SHA-256 over the profile's shipped layers and ``sources`` (paths relative to the
    package directory), each with its name and length; ``None`` when a source cannot be
    read (no fingerprint, no precompiled policy)."""
    digest = hashlib.sha256()
    for name, data in layers if layers is not None else _layers(profile):
        digest.update(b"%s\0%d\0" % (name.encode(), len(data)))
        digest.update(data)
    root = str(PACKAGE_ROOT)
    for relative in sources:
        source = _read(os.path.join(root, relative))
        if source is None:
            return None
        digest.update(b"%s\0%d\0" % (relative.encode(), len(source)))
        digest.update(source)
    return digest.hexdigest()


def _read(path: str) -> bytes | None:
    """A file's bytes through a bare descriptor (a Python file object costs more than
    the read for these 30 small files, at every start)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _generated() -> Any:
    try:
        return importlib.import_module(MODULE)
    except ImportError:
        return None


def _parts(profile: str | None,
           layers: list[tuple[str, bytes]] | None = None) -> dict[str, bytes] | None:
    """The pickled parts of ``profile`` ("" the whole policy) when the module is current."""
    module = _generated()
    entry = None if module is None else module.PROFILES.get(profile or "default")
    if entry is None or fingerprint(profile, module.SOURCES, layers) != entry["fingerprint"]:
        return None
    return {part: binascii.a2b_base64(text) for part, text in entry["parts"].items()}


def shipped_part(profile: str | None, part: str) -> tuple[bool, object]:
    """``(True, value)`` of one of :data:`PARTS` of the shipped policy of ``profile``
    (no file layered on it), or ``(False, None)`` when it must be loaded the slow way."""
    blob = (_parts(profile) or {}).get(part)
    if blob is None:
        return False, None
    return True, pickle.loads(blob)  # noqa: S301 - a module of this package, see above


def shipped_network(profile: str | None) -> tuple[NetworkConfig, str | None] | None:
    """The network section and ``daemon.host_name`` of the shipped policy of ``profile``
    without loading the rest; ``None``: load the policy (see the module docstring)."""
    from edgeguard.net.config import NetworkConfig  # noqa: PLC0415

    parts = _parts(profile) or {}
    if "network" not in parts or "daemon.host_name" not in parts:
        return None
    network = pickle.loads(parts["network"])  # noqa: S301 - see the module docstring
    host = pickle.loads(parts["daemon.host_name"])  # noqa: S301
    if not isinstance(network, NetworkConfig) or not (host is None or isinstance(host, str)):
        return None
    return network, host


def shipped_policy_object(profile: str | None, layers: list[tuple[str, bytes]]
                          ) -> Policy | None:
    """The whole shipped policy of ``profile`` (``layers``: its shipped texts, already
    read), or ``None`` when it must be loaded the slow way."""
    from edgeguard.policy.model import Policy  # noqa: PLC0415

    blob = (_parts(profile, layers) or {}).get("")
    if blob is None:
        return None
    policy = pickle.loads(blob)  # noqa: S301 - a module of this package, see above
    return policy if isinstance(policy, Policy) else None
