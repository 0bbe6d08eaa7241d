"""Kiosk lockdown: USB device-class authorisation and Bluetooth radios off.

``edgeguard.policy`` is imported first on purpose: the policy model imports this
package's ``config`` module, so loading the policy package before any kiosk module
breaks the ``kiosk.config -> policy -> policy.model -> kiosk.config`` import cycle.
"""

import edgeguard.policy  # noqa: F401 - import order, see above
