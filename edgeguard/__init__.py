"""edgeguard: turn a school trust's information-security policy into kernel-level facts
and a tamper-evident audit trail."""

__all__ = ["__version__"]

__version__ = "0.1.0"
