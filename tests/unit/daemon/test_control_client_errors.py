"""What a command line says when it cannot ask the daemon: "no daemon" (exit 3) only when
none answers; a socket this user may not use is a refusal (exit 1), not "is it running?"."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edgeguard.cli._common import EXIT_NO_DAEMON, EXIT_REFUSED, report_control_error
from edgeguard.daemon import control
from edgeguard.daemon.control import ControlError, DaemonUnreachable, request


def test_no_socket_is_no_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnreachable) as caught:
        request(tmp_path / "control.sock", "status")
    assert report_control_error(caught.value) == EXIT_NO_DAEMON


def test_a_socket_nobody_listens_on_is_no_daemon(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # bound, never listening: connect is refused
        with pytest.raises(DaemonUnreachable):
            request(path, "status")


def test_permission_denied_is_a_refusal_that_names_the_admin_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def denied(path: Path | str, timeout: float) -> socket.socket:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(control, "_connect", denied)
    with pytest.raises(ControlError) as caught:
        request(tmp_path / "control.sock", "status")
    assert not isinstance(caught.value, DaemonUnreachable)
    assert report_control_error(caught.value) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "Permission denied" in err
    assert "daemon.admin_group" in err
    assert "is the daemon running" not in err
