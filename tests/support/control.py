"""A real control socket serving test handlers on a background event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgeguard.daemon.component import Command, Peer, read_only
from edgeguard.daemon.control import ControlServer

__all__ = ["serve_control"]


@contextlib.contextmanager
def serve_control(sock: Path, handlers: dict[str, Callable[[Peer, Any], Any]]) -> Iterator[None]:
    """``ControlServer`` on ``sock`` with ``handlers`` (read-only commands unless given as
    a :class:`Command`) until the block ends."""
    loop = asyncio.new_event_loop()
    server = ControlServer(sock, {name: h if isinstance(h, Command) else read_only(h)
                                  for name, h in handlers.items()})
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(server.close())
        loop.close()
