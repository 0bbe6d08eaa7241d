"""The policy: declarative YAML validated into typed, frozen objects.

The names below load lazily: feature packages' config modules import
``edgeguard.policy.types``, and the policy model imports those config modules, so an
eager import here would close an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeguard.policy.load import LoadedPolicy, PolicyError, load_policy
    from edgeguard.policy.model import Policy

__all__ = ["LoadedPolicy", "Policy", "PolicyError", "load_policy"]

_WHERE = {"LoadedPolicy": "load", "PolicyError": "load", "load_policy": "load",
          "Policy": "model"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"edgeguard.policy.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'edgeguard.policy' has no attribute {name!r}")
