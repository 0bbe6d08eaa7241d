"""nftables enforcement: edgeguard's own ``inet edgeguard`` table, driven through ``nft -j``.

Submodules, smallest first: :mod:`.config` (the ``network.enforcement`` policy section),
:mod:`.runner` (one JSON transaction per ``nft`` call), :mod:`.ruleset` (the table built
from policy and read back from the kernel), :mod:`.plan` (a decision mapped to one nft
change), :mod:`.enforcer` (blocks, unblocks, expiries), :mod:`.actions` (the ``Action``
implementations) and :mod:`.service` (the daemon component and its control commands).

This ``__init__`` imports nothing: the policy model imports :mod:`.config` (through
``edgeguard.net.config``), and must not pull the rest of the package in.
"""
