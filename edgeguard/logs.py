"""Diagnostics for operators (stderr, picked up by journald). Not audit records."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure"]


def configure(verbose: bool = False, json: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
