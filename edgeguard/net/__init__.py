"""Network watch: kernel-prefiltered capture, decoders and detectors.

Some modules of this package may be compiled with mypyc (setup.py lists them; see
docs/network-capture.md, "Performance"). ``EDGEGUARD_PURE=1`` in the environment makes
this package import their Python source instead, so the same tests run against both
builds; :func:`compiled` says which one is in use. A source file edited after its module
was compiled (a development tree) makes the whole package import as source, with a
warning, rather than run code that no longer matches it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["compiled"]


class _PureFinder:
    """Finds ``edgeguard.net.*`` modules as source files, never as extension modules."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(f"{__name__}.") or not path:
            return None
        leaf = name.rpartition(".")[2]
        for folder in path:
            for candidate in (os.path.join(folder, leaf, "__init__.py"),
                              os.path.join(folder, f"{leaf}.py")):
                if os.path.isfile(candidate):
                    return importlib.util.spec_from_file_location(name, candidate)
        return None


#: Seconds a source may be newer than its compiled module (files unpacked together).
_SKEW = 2.0


def _stale() -> str | None:
    """A compiled module whose source changed since it was built, if any."""
    here = os.path.dirname(__file__)
    for folder in (here, os.path.join(here, "detect")):
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".so"):
                    continue
                source = os.path.join(folder, entry.name.split(".", 1)[0] + ".py")
                if (os.path.exists(source)
                        and os.stat(source).st_mtime > entry.stat().st_mtime + _SKEW):
                    return source
    return None


def _use_source() -> bool:
    if os.environ.get("EDGEGUARD_PURE") == "1":
        return True
    stale = _stale()
    if stale is not None:
        warnings.warn(f"{stale} changed after it was compiled: running edgeguard.net as "
                      f"Python source (rebuild: bash scripts/setup.sh)",
                      RuntimeWarning, stacklevel=2)
        return True
    return False


if _use_source() and not any(isinstance(f, _PureFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _PureFinder())


def compiled() -> bool:
    """Whether the decoders run as mypyc-compiled code."""
    from edgeguard.net import decode  # noqa: PLC0415 (the probe itself)

    return not (decode.__file__ or "").endswith(".py")
