"""Who may read the audit trail: root writes, ``audit.file_group`` reads, nobody else.

With a group (a gid; the policy's ``audit.file_group``) and run as root, the directory is
2750 root:<group> and every segment root:<group> with the file mode (0640). The
set-group-ID bit on the directory is what keeps segments in the group after the daemon
has dropped ``CAP_CHOWN``: a file created in such a directory takes the directory's
group (the same rule /var/mail and /var/log/journal rely on), so only the start-up,
still privileged, ever gives anything away. A group changed on reload needs
``CAP_CHOWN`` again: :meth:`Ownership.own_directory` then raises
:class:`OwnershipError`, the writer audits it and the new group applies at the next
start. Unprivileged runs (tests, ``replay --audit``) cannot give files away and keep
their own. The key file is not here: it stays 0600 root (:mod:`edgeguard.audit.keys`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgeguard.audit import segments as seg

__all__ = ["DIRECTORY_MODE", "Ownership", "OwnershipError"]

#: The audit directory: the owner writes, the audit group lists and reads, others nothing;
#: set-group-ID so new segments are born in the audit group.
DIRECTORY_MODE = 0o2750


class OwnershipError(OSError):
    """The trail could not be given to the audit group (no ``CAP_CHOWN`` any more)."""


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
        """The directory 2750 root:<group>, and the rotated segments already in it
        root:<group> too (an older install, or the group changed in the policy)."""
        if not self.active:
            return
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._give(fd)
            if stat.S_IMODE(os.fstat(fd).st_mode) != DIRECTORY_MODE:
                os.fchmod(fd, DIRECTORY_MODE)  # after chown, which clears set-group-ID
                if stat.S_IMODE(os.fstat(fd).st_mode) != DIRECTORY_MODE:
                    # the kernel drops set-group-ID for an owner outside the group who
                    # lacks CAP_FSETID: new segments would not be in the group
                    raise OwnershipError(errno.EPERM, f"cannot make {self.directory} "
                                         f"{DIRECTORY_MODE:04o} without CAP_FSETID; run "
                                         "`edgeguard prepare` as root")
        finally:
            os.close(fd)
        for path in seg.rotated_segments(self.directory):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:  # pruned meanwhile
                continue
            except OSError as exc:  # a symlink (ELOOP) is not ours to give away
                if exc.errno != errno.ELOOP:
                    raise
                continue
            try:
                self._give(fd)
            finally:
                os.close(fd)

    def own_file(self, fd: int) -> None:
        """A segment: the file mode always, root:<group> when we may (a new segment
        already has the group from the set-group-ID directory)."""
        if self.active:
            self._give(fd)
        os.fchmod(fd, self.file_mode)

    def _give(self, fd: int) -> None:
        """root:<group>; a no-op when it already is, which needs no capability."""
        assert self.group is not None
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) == (0, self.group):
            return
        try:
            os.fchown(fd, 0, self.group)
        except PermissionError as exc:
            raise OwnershipError(
                exc.errno, f"cannot give the audit trail in {self.directory} to group "
                f"{self.group} without CAP_CHOWN; a new audit.file_group applies at the "
                "next start") from None
