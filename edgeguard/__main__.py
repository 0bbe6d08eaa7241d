"""``python -m edgeguard`` runs the command-line interface."""

import sys

from edgeguard.cli import main

sys.exit(main())
