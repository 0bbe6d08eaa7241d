"""Fuzz the control socket's request parser: anything a peer can send is a
:class:`Request` or a :class:`BadRequest`, in bounded time and memory (issue 16 §4)."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from edgeguard.daemon.control import BadRequest, Request, parse_request
from edgeguard.policy.control import ControlConfig
from tests.unit.fuzz.fuzz_support import Budget, campaign, fuzz_settings

MAX = int(ControlConfig().max_request)
COMMANDS = ["status", "reload", "media.allow", "net.unblock", "", "\x00", "é" * 40]


def _value(rnd: random.Random, depth: int = 0) -> Any:
    pick = rnd.randrange(8 if depth < 3 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rnd.random() < 0.5
    if pick == 2:
        return rnd.randrange(-(2**63), 2**63)
    if pick == 3:
        return rnd.uniform(-1e308, 1e308)
    if pick == 4:
        return "".join(chr(rnd.randrange(0, 0x2FFF)) for _ in range(rnd.randrange(12)))
    if pick == 5:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {str(_value(rnd, 3)): _value(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def request_line(rnd: random.Random) -> bytes:
    """A well-formed request, then mutated: bytes flipped, cut, spliced, nested deep,
    padded around the size cap, the newline lost, raw bytes, a non-object."""
    body: dict[str, Any] = {"command": rnd.choice(COMMANDS)}
    if rnd.random() < 0.5:
        body["args"] = _value(rnd)
    if rnd.random() < 0.5:
        body["command_line"] = _value(rnd) if rnd.random() < 0.5 else "x" * rnd.randrange(9000)
    line = bytearray(orjson.dumps(body) + b"\n")
    kind = rnd.randrange(8)
    if kind == 1:  # flipped bytes
        for _ in range(rnd.randrange(1, 9)):
            line[rnd.randrange(len(line))] = rnd.randrange(256)
    elif kind == 2:  # cut short
        line = line[:rnd.randrange(len(line) + 1)]
    elif kind == 3:  # deep nesting (orjson refuses beyond its recursion limit)
        depth = rnd.randrange(1, 5000)
        line = bytearray(b'{"command":"status","args":' + b"[" * depth + b"]" * depth
                         + b"}\n")
    elif kind == 4:  # around the size cap
        pad = max(0, MAX - len(line) + rnd.randrange(-8, 9))
        line = line[:-2] + b" " * pad + b"}\n"
    elif kind == 5:  # raw bytes
        line = bytearray(rnd.randbytes(rnd.randrange(256)))
    elif kind == 6:  # spliced
        pos = rnd.randrange(len(line) + 1)
        line[pos:pos] = rnd.randbytes(rnd.randrange(64))
    elif kind == 7:  # another JSON value than an object
        line = bytearray(orjson.dumps(_value(rnd)) + b"\n")
    return bytes(line)


def parse(line: bytes) -> None:
    try:
        req: Request | None = parse_request(line, MAX)
        refusal = ""
    except BadRequest as exc:
        req, refusal = None, str(exc)
    if req is None:
        assert refusal  # the peer is told why
        return
    assert isinstance(req, Request)
    assert isinstance(req.command, str)
    assert isinstance(req.args, dict)
    assert len(req.command_line) <= 4096
    assert len(line) <= MAX


@fuzz_settings()
@given(st.randoms(use_true_random=False))
def test_parser_answers_every_line_hypothesis(rnd: random.Random) -> None:
    Budget().run(parse, request_line(rnd))


def test_parser_answers_every_line_campaign() -> None:
    budget = campaign("control request parser", request_line, parse)
    assert budget.inputs > 0
