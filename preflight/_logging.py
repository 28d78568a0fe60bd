"""Structured logs: one JSON object per line on stderr, or a console view on a TTY.

Every event has an ISO-8601 UTC ``timestamp``, a ``level`` and a dotted
``event`` name.  A last processor replaces any known secret in any string
field by ``***``, so a password can never reach the log even by accident.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from ._errors import redact

_secrets: list[str] = []


def set_secrets(secrets: Iterable[str]) -> None:
    """Start over with exactly these secrets (one run of the command line)."""
    _secrets.clear()
    add_secrets(secrets)


def add_secrets(secrets: Iterable[str]) -> None:
    """Register values that must be redacted from every later log line."""
    for secret in secrets:
        if secret and secret not in _secrets:
            _secrets.append(secret)


def scrub(value: Any) -> Any:
    """``value`` with every registered secret replaced by ``***``."""
    return redact(value, _secrets)


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _secrets:
        for key in list(event):
            event[key] = redact(event[key], _secrets)
    return event


def configure(fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog; ``fmt`` is ``auto``, ``json`` or ``console``."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    return structlog.get_logger()
