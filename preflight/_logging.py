"""Structured logs: one JSON object per line on stderr, or a console view on a TTY.

Every event has an ISO-8601 UTC ``timestamp``, a ``level`` and a dotted
``event`` name.  The last processor before rendering passes every value
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


class _SafeLogger:
    """Writes one rendered line; an output failure is swallowed, never raised."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(message + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            self._stream = None  # closed, broken or full: stop trying

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


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
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        logger_factory=lambda *_args: _SafeLogger(out),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    return structlog.get_logger()


def reset() -> None:
    """Back to a fresh state (tests)."""
    set_redactor(Redactor())
    structlog.reset_defaults()
