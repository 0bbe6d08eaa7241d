"""Actions change the system. Each is idempotent and reports success or failure.

The base class, its error and the ``audited`` wrapper live in :mod:`edgeguard.actions.base`.
This ``__init__`` imports nothing: ``edgeguard.net.config`` imports the nftables policy
section (:mod:`edgeguard.actions.nftables.config`), and a ``replay`` must not pay for the
action base, the finding catalogue and the audit sink it never uses.
"""
