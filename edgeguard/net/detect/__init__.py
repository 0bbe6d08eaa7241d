"""Detectors: decoded packets in, findings (facts) out. They never act.

See :mod:`edgeguard.net.detect.base` for the contract (and
:mod:`edgeguard.net.detect.chain` for the chain that runs them) the capture worker and
``edgeguard replay`` code against.
"""

from edgeguard.net.detect.base import Detector
from edgeguard.net.detect.chain import DetectorChain, build_detectors

__all__ = ["Detector", "DetectorChain", "build_detectors"]
