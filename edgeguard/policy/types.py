"""Value types a policy may hold, each parsed from YAML text with a clear error.

A policy section is a frozen dataclass whose fields are declared with :func:`setting`
(default, documentation, unit). The loader reads the type hints and converts the YAML
with these parsers, so a section module never parses YAML itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import grp
import ipaddress
import re
from typing import Any

__all__ = [
    "ByteSize",
    "Duration",
    "FileMode",
    "GroupName",
    "IPAddress",
    "IPNetwork",
    "MacAddress",
    "Rate",
    "Timestamp",
    "UsbId",
    "setting",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]*)\s*$")


class Duration(float):
    """Seconds, written with a unit: ``250ms``, ``30s``, ``10m``, ``2h``, ``90d``."""

    what = "duration such as '30s'"

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _NUMBER_UNIT.match(text)
        if not match or match.group(2).lower() not in _DURATION_UNITS:
            raise ValueError(
                f"expected a duration with a unit (ms, s, m, h, d), e.g. '30s', got {text!r}"
            )
        return cls(float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


class ByteSize(int):
    """Bytes, written with a unit: ``64MiB``, ``1GB``, ``512B``."""

    what = "size such as '64MiB'"

    @classmethod
    def parse(cls, text: str) -> ByteSize:
        match = _NUMBER_UNIT.match(text)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"expected a size with a unit (B, KiB, MiB, GiB, KB, MB, GB), got {text!r}"
            )
        return cls(int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]))


class Rate(float):
    """Events per second, written ``500/s`` or ``30000/m``."""

    what = "rate such as '500/s'"

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m|min|h)\s*$", text)
        if not match:
            raise ValueError(f"expected a rate such as '500/s' or '300/m', got {text!r}")
        return cls(float(match.group(1)) / _DURATION_UNITS[match.group(2)])


class Timestamp(float):
    """A moment, written in ISO 8601 with its zone: ``2026-12-14T19:00:00Z`` or
    ``2026-12-14T19:00:00+00:00``; held as seconds since the epoch. A time without a
    zone is refused (it would mean a different moment on each host)."""

    what = "time such as '2026-12-14T19:00:00Z'"
    accepts_numbers = True  # unquoted, YAML reads it as a timestamp: parse its text

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        try:
            moment = datetime.datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time such as '2026-12-14T19:00:00Z', "
                             f"got {text!r}") from None
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has no time zone: add 'Z' (UTC) or an offset "
                             "such as '+01:00'")
        return cls(moment.timestamp())

    def iso(self) -> str:
        """The moment in UTC, as written in a policy (``...Z``)."""
        moment = datetime.datetime.fromtimestamp(float(self), datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MacAddress(str):
    """``aa:bb:cc:dd:ee:ff`` (case and ``-`` separators normalised)."""

    what = "MAC address"

    @classmethod
    def parse(cls, text: str) -> MacAddress:
        norm = text.strip().lower().replace("-", ":")
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", norm):
            raise ValueError(f"expected a MAC address like 02:00:5e:10:00:01, got {text!r}")
        return cls(norm)


class UsbId(str):
    """A USB vendor or product id: four hex digits, e.g. ``0951`` (quoted or not)."""

    what = "USB id such as '0951'"
    accepts_numbers = True

    @classmethod
    def parse(cls, text: str) -> UsbId:
        norm = text.strip().lower()
        if norm.startswith("0x"):
            norm = norm[2:]
        if not re.fullmatch(r"[0-9a-f]{4}", norm):
            raise ValueError(f"expected a USB id of four hex digits like '0951', got {text!r}")
        return cls(norm)


class FileMode(int):
    """File permission bits, always read as octal: ``0640``, ``'0o640'`` or ``640``."""

    what = "file mode such as 0640"
    accepts_numbers = True

    @classmethod
    def parse(cls, text: str) -> FileMode:
        norm = text.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", norm) or int(norm, 8) > 0o777:
            raise ValueError(f"expected octal permission bits up to 0777, e.g. 0640, got {text!r}")
        return cls(int(norm, 8))


class GroupName(str):
    """A local group that must exist on this host: a name (``adm``) or a numeric gid.

    Checked when the policy is loaded, so a typo is an error naming the file and line,
    not a daemon that starts and then cannot give its files the intended group.
    """

    what = "group name such as 'adm'"
    accepts_numbers = True

    @classmethod
    def parse(cls, text: str) -> GroupName:
        norm = text.strip()
        try:
            if norm.isdigit():
                grp.getgrgid(int(norm))
            else:
                grp.getgrnam(norm)
        except (KeyError, OverflowError):
            raise ValueError(f"no group {norm!r} on this host (getent group {norm})") from None
        return cls(norm)

    @property
    def gid(self) -> int:
        """The group's id now (KeyError if it was removed since the policy was loaded)."""
        return int(self) if self.isdigit() else grp.getgrnam(self).gr_gid


def setting(default: Any, doc: str, unit: str | None = None, *, factory: Any = None,
            **kw: Any) -> Any:
    """Declare a policy field: its default, what it means, and its unit.

    ``minimum``/``maximum`` (numbers) are checked by the loader. Mutable defaults are
    not allowed (sections are frozen; use tuples). ``factory`` builds a nested section's
    default instead of ``default``.
    """
    meta = {"doc": doc, "unit": unit, **kw}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
