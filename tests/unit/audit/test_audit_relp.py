"""The RELP client's framing and session against a scripted server on loopback
(tests/linux/audit/test_audit_collectors.py runs it against rsyslog's imrelp)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from edgeguard.audit.relp import RelpTransport, encode_frame, parse_frames
from edgeguard.audit.shipstate import FailureCause, ProtocolError, classify

RECORD = (1, b'{"event":{"sequence":1}}', {"event": {"sequence": 1}})


def test_frames_round_trip_and_a_partial_frame_waits() -> None:
    data = encode_frame(7, "syslog", b"hello\nworld") + encode_frame(8, "close")
    assert data == b"7 syslog 11 hello\nworld\n8 close 0\n"
    buf = bytearray(data[:-5])
    assert parse_frames(buf) == [(7, "syslog", b"hello\nworld")]
    buf += data[-5:]
    assert parse_frames(buf) == [(8, "close", b"")]
    assert buf == bytearray()


@pytest.mark.parametrize("junk", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"x" * 80,
                                  b"1 rsp 3 200X"])
def test_anything_but_frames_is_a_protocol_error(junk: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_frames(bytearray(junk))


class Server:
    """Accepts one session, answers ``open`` with ``open_reply`` and each syslog frame
    with ``reply``; records what it received."""

    def __init__(self, open_reply: bytes = b"200 OK\nrelp_version=0\ncommands=syslog",
                 reply: bytes = b"200 OK") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.open_reply, self.reply = open_reply, reply
        self.messages: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = bytearray()
        with conn:
            conn.settimeout(5)
            while True:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                buf += chunk
                for txnr, command, data in parse_frames(buf):
                    if command == "open":
                        conn.sendall(encode_frame(txnr, "rsp", self.open_reply))
                    elif command == "syslog":
                        self.messages.append(data)
                        conn.sendall(encode_frame(txnr, "rsp", self.reply))
                    elif command == "close":
                        conn.sendall(encode_frame(txnr, "rsp"))
                        return


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.sock.close()


def test_delivered_only_once_every_message_is_answered(server: Server) -> None:
    relp = RelpTransport("127.0.0.1", server.port, tls=False, window=2)
    relp.connect()
    relp.send([RECORD, RECORD, RECORD, RECORD, RECORD])  # more than the window: waits
    for _ in range(100):
        if relp.delivered():
            break
        threading.Event().wait(0.02)
    assert relp.delivered()
    relp.close()
    server.thread.join(5)
    assert len(server.messages) == 5
    assert server.messages[0].startswith(b"<")  # RFC 5424 ...
    assert server.messages[0].endswith(RECORD[1])  # ... whose MSG is the JSON line


def test_a_refused_open_or_message_is_a_protocol_failure() -> None:
    srv = Server(open_reply=b"500 not permitted")
    relp = RelpTransport("127.0.0.1", srv.port, tls=False)
    with pytest.raises(ProtocolError) as err:
        relp.connect()
    assert classify(err.value) is FailureCause.PROTOCOL
    srv.sock.close()
    srv = Server(reply=b"500 queue full")
    relp = RelpTransport("127.0.0.1", srv.port, tls=False)
    relp.connect()
    relp.send([RECORD])
    srv.thread.join(1)  # time for its answer to arrive
    with pytest.raises(ProtocolError, match="queue full"):  # the shipper reports, reconnects
        relp.delivered()
    relp.close()
    srv.thread.join(5)
    srv.sock.close()


class Mute:
    """Accepts one session and never answers it (``chatter``: sends, every 50 ms, an
    answer to a transaction the client never opened)."""

    def __init__(self, chatter: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.chatter = chatter
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            for _ in range(200):  # 10 s at most
                if self.done.wait(0.05):
                    return
                if self.chatter:
                    try:
                        conn.sendall(encode_frame(999, "rsp", b"200 OK"))
                    except OSError:
                        return


@pytest.mark.parametrize("chatter", [False, True], ids=["silent", "unrelated-answers"])
def test_a_receiver_that_never_answers_open_times_out(chatter: bool) -> None:
    mute = Mute(chatter)
    relp = RelpTransport("127.0.0.1", mute.port, tls=False, timeout=0.5)
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            relp.connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            raised.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(5)
    mute.done.set()
    mute.sock.close()
    assert not worker.is_alive(), "connect() still waiting for an answer after 5 s"
    assert time.monotonic() - started < 3
    assert len(raised) == 1
    assert isinstance(raised[0], TimeoutError)
    assert classify(raised[0]) is FailureCause.TIMEOUT  # reported, audited, in status
    assert not relp.connected
