"""Who may read the audit trail: root writes, ``audit.file_group`` reads, nobody else.

With a group (a gid; the policy's ``audit.file_group``) and run as root, the directory is
0750 root:<group> and every segment root:<group> with the file mode (0640). Unprivileged
runs (tests, ``replay --audit``) cannot give files away and keep their own. The key file
is not here: it stays 0600 root (:mod:`edgeguard.audit.keys`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgeguard.audit import segments as seg

__all__ = ["DIRECTORY_MODE", "Ownership"]

#: The audit directory: the owner writes, the audit group lists and reads, others nothing.
DIRECTORY_MODE = 0o750


@dataclass(slots=True)
class Ownership:
    directory: Path
    file_mode: int = 0o640
    group: int | None = None

    @property
    def active(self) -> bool:
        """Only root can give files away."""
        return self.group is not None and os.geteuid() == 0

    def own_directory(self) -> None:
        """The directory 0750 root:<group>, and the rotated segments already in it
        root:<group> too (an older install, or the group changed in the policy)."""
        if not self.active:
            return
        assert self.group is not None
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fchown(fd, 0, self.group)
            os.fchmod(fd, DIRECTORY_MODE)
        finally:
            os.close(fd)
        for path in seg.rotated_segments(self.directory):
            with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
                os.chown(path, 0, self.group, follow_symlinks=False)

    def own_file(self, fd: int) -> None:
        """A segment: the file mode always, root:<group> when we may."""
        if self.active:
            assert self.group is not None
            os.fchown(fd, 0, self.group)
        os.fchmod(fd, self.file_mode)  # after chown, which may clear bits
