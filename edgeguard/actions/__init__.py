"""Actions change the system. Each is idempotent and reports success or failure."""

from edgeguard.actions.base import Action, ActionError, audited

__all__ = ["Action", "ActionError", "audited"]
