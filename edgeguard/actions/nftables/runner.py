"""Run one nftables transaction: a JSON document on ``nft -j -f -``'s standard input.

Why the ``nft`` binary and not libnftables through ctypes: a fork per change costs
~5 ms, which is nothing next to the rate of block decisions (repeats are suppressed
upstream), and in exchange a crash or leak in libnftables cannot take the daemon down,
the call has a hard timeout, and the netns the command runs in is chosen by an argument
prefix (``ip netns exec NS``) instead of a per-thread ``setns`` inside our process, which
is what lets the tests drive the very same code against throwaway namespaces. The JSON
schema is the same either way. ``nft -f`` applies the whole document as one kernel
transaction: all commands take effect or none does.
"""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NFT", "Command", "Nft", "NftError"]

NFT = "/usr/sbin/nft"

#: One element of the ``{"nftables": [...]}`` array, e.g. ``{"add": {"element": {...}}}``.
Command = Mapping[str, Any]

#: nft reports kernel errors as strerror text; map the ones callers act on back to errno.
_ERRNO_TEXT = {
    "File exists": errno.EEXIST,
    "No such file or directory": errno.ENOENT,
    "Too many open files in system": errno.ENFILE,  # a set at its `size` cap
    "Operation not permitted": errno.EPERM,
    "Device or resource busy": errno.EBUSY,
}


class NftError(Exception):
    """nft refused the transaction; nothing of it was applied.

    ``errno`` is set when the kernel's reason is one callers distinguish (EEXIST: the
    element is already there; ENOENT: it is not; ENFILE: the set is full).
    """

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


class Nft:
    """Runs transactions with ``nft``; ``prefix`` selects a netns (``ip netns exec NS``)."""

    def __init__(self, prefix: Sequence[str] = (), nft: str = NFT, timeout: float = 10.0):
        self.argv = [*prefix, nft, "-j", "-f", "-"]
        self.timeout = timeout
        self.calls = 0

    def run(self, commands: Sequence[Command]) -> list[dict[str, Any]]:
        """Apply ``commands`` atomically; return the objects nft printed (for ``list``)."""
        document = json.dumps({"nftables": list(commands)})
        self.calls += 1
        try:
            proc = subprocess.run(  # noqa: S603 - fixed argv, JSON on stdin, no shell
                self.argv, input=document, capture_output=True, text=True,
                timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NftError(f"cannot run {self.argv[-4]}: {exc}") from exc
        if proc.returncode != 0:
            message = _first_error(proc.stderr) or f"nft exited with {proc.returncode}"
            raise NftError(message, _errno_of(message))
        if not proc.stdout.strip():
            return []
        try:
            out = json.loads(proc.stdout)
        except ValueError as exc:
            raise NftError(f"nft printed invalid JSON: {exc}") from exc
        items = out.get("nftables", []) if isinstance(out, dict) else []
        return [item for item in items if isinstance(item, dict)]


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if "Error:" in line:
            return line.split("Error:", 1)[1].strip()
    return stderr.strip()


def _errno_of(message: str) -> int | None:
    for text, number in _ERRNO_TEXT.items():
        if text in message:
            return number
    return None
