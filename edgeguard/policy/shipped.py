"""The shipped policies embedded in the package (``edgeguard/rules/<profile>.yaml``):
their names and their bytes. A leaf, so that the loader and the precompiled policies
(:mod:`edgeguard.policy.precompiled`) both read them without importing each other."""

from __future__ import annotations

import os

__all__ = ["PROFILES", "shipped_policy"]

PROFILES = ("default", "gateway", "kiosk")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped_policy(profile: str) -> tuple[str, bytes]:
    """The text of a shipped policy (``rules/<profile>.yaml``, embedded in the package)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    name = f"<embedded {profile}.yaml>"
    # start-up: read from the package directory directly (importlib.resources costs
    # 5-8 ms of imports); through it only when the package is not a directory (a zip)
    try:
        with open(os.path.join(_PACKAGE_DIR, "rules", f"{profile}.yaml"), "rb") as file:
            return name, file.read()
    except FileNotFoundError:
        import importlib.resources  # noqa: PLC0415

        return name, (importlib.resources.files("edgeguard") / "rules"
                      / f"{profile}.yaml").read_bytes()
