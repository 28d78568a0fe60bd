"""Structured logs: one JSON object per line on stderr, or a console view on a TTY.

Every event has an ISO-8601 UTC ``timestamp``, a ``level`` and a dotted
``event`` name; the JSON line itself comes from ``_jsonlog``, which the migrate
runner writes through as well.  The last processor before rendering passes every value
through the run's :class:`Redactor`, so a password cannot reach the log even
by accident; keys, event names and levels are never touched.  A log line that
cannot be written (stderr closed, a broken pipe, a full disk) is dropped:
output never changes the outcome.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from ._jsonlog import SafeStream, add_timestamp, render
from ._redact import Redactor

_redactor = Redactor()


def set_redactor(redactor: Redactor) -> None:
    """The redactor every later log line goes through (one per command-line run)."""
    global _redactor
    _redactor = redactor


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    redacted = _redactor.document(dict(event))
    assert isinstance(redacted, dict)
    return redacted


def configure(fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog; ``fmt`` is ``auto``, ``json`` or ``console``."""
    out = stream if stream is not None else sys.stderr
    try:
        tty = out is not None and out.isatty()
    except (OSError, ValueError):
        tty = False
    console = fmt == "console" or (fmt == "auto" and tty)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=tty)
        if console
        else render  # the line the migrate runner writes too (_jsonlog)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_timestamp,
            _redact,
            renderer,
        ],
        logger_factory=lambda *_args: SafeStream(out),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    return structlog.get_logger()


def reset() -> None:
    """Back to a fresh state (tests)."""
    set_redactor(Redactor())
    structlog.reset_defaults()
