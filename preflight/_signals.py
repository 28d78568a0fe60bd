"""SIGTERM and SIGINT: stop at once, even as PID 1 in a container, even during start-up.

As PID 1 the kernel drops signals a process has no handler for, so without
these handlers ``kubectl delete pod`` would wait out the grace period.
:func:`install_early` runs first thing in the process (``_entry``), before the
heavy imports, and only remembers a signal; :func:`install` then raises
:class:`Interrupted` for it, and for any later one.  The exception breaks out of
a sleep, a lookup or a connection attempt (psycopg waits in Python-level polls).
"""

from __future__ import annotations

import signal
from types import FrameType

_pending: list[int] = []


def _remember(signum: int, _frame: FrameType | None) -> None:
    if not _pending:
        _pending.append(signum)


def _raise(signum: int, _frame: FrameType | None) -> None:
    from ._errors import Interrupted

    # Ignore further signals while the first one unwinds and is logged.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(signum)


def install_early() -> None:
    """Remember SIGTERM and SIGINT while the process starts."""
    signal.signal(signal.SIGTERM, _remember)
    signal.signal(signal.SIGINT, _remember)


def install() -> None:
    """Route SIGTERM and SIGINT to :class:`Interrupted`; raise it for one that came early."""
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
    if _pending:
        _raise(_pending.pop(), None)
