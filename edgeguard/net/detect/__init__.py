"""Detectors: decoded packets in, findings (facts) out. They never act.

See :mod:`edgeguard.net.detect.base` for the contract the capture worker and
``edgeguard replay`` code against.
"""

from edgeguard.net.detect.base import Detector, DetectorChain, build_detectors

__all__ = ["Detector", "DetectorChain", "build_detectors"]
