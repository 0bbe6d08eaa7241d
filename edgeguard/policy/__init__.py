"""The policy: declarative YAML validated into typed, frozen objects.

The package exports nothing itself; import each part by its module, so that the leaf
vocabulary can be imported without the model built on top of it:

* ``edgeguard.policy.types`` — the value types every feature's ``config`` module uses
  (durations, sizes, addresses, ``setting``); imports nothing from edgeguard.
* ``edgeguard.policy.model`` — the whole ``Policy``, built from those ``config`` modules.
* ``edgeguard.policy.load`` — ``load_policy``, ``LoadedPolicy``, ``PolicyError``.

(Re-exporting the loader here made ``import edgeguard.audit.config`` run this file,
which imported the model, which imported ``edgeguard.audit.config`` half-initialised.)
"""

from __future__ import annotations

__all__: list[str] = []
