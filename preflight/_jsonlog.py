"""The one JSON log line both commands write: standard library only.

The check's structlog chain ends in :func:`add_timestamp` and :func:`render`,
and the migrate runner (which runs in the app's image, without structlog)
writes through :class:`Writer`, so a line of either has the same shape: an
ISO-8601 UTC ``timestamp`` ending in ``Z``, a ``level``, a dotted ``event``,
values of the same JSON types.  Output that cannot be written (stderr closed, a
broken pipe, a full disk) is dropped: output never changes the outcome.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

from ._redact import Redactor


def timestamp() -> str:
    """Now, in UTC, as ISO 8601 with a ``Z`` (``2026-11-30T11:45:57.123456Z``)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def iso(moment: datetime | None) -> str | None:
    """A point in time from the server in the log's format (None stays None)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def add_timestamp(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the ``timestamp`` field."""
    event["timestamp"] = timestamp()
    return event


def dumps(record: Mapping[str, Any]) -> str:
    """One line of JSON; anything JSON has no type for is written as its ``str``."""
    return json.dumps(record, default=str)


def render(_logger: Any, _name: str, event: Mapping[str, Any]) -> str:
    """A structlog renderer: the same line as :meth:`Writer.emit`."""
    return dumps(event)


class SafeStream:
    """Writes one rendered line; an output failure is swallowed, never raised."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            if self._stream is None:
                return
            try:
                self._stream.write(message + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None  # closed, broken or full: stop trying

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class Writer:
    """JSON lines without structlog, every value through the run's redactor."""

    def __init__(self, stream: TextIO | None, redactor: Redactor) -> None:
        self._out = SafeStream(stream)
        self.redactor = redactor

    def emit(self, level: str, event: str, **fields: Any) -> None:
        record = self.redactor.document({"event": event, **fields, "level": level})
        assert isinstance(record, dict)
        record["timestamp"] = timestamp()
        self._out.msg(dumps(record))
