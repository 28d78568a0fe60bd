"""SIGTERM and SIGINT: stop at once, even as PID 1 in a container.

As PID 1 the kernel drops signals a process has no handler for, so without
these handlers ``kubectl delete pod`` would wait out the grace period.  The
handler raises :class:`Interrupted`, which breaks out of a sleep or a
connection attempt (psycopg waits in short Python-level polls).
"""

from __future__ import annotations

import signal
from types import FrameType

from ._errors import Interrupted


def _raise(signum: int, _frame: FrameType | None) -> None:
    # Ignore further signals while the first one unwinds and is logged.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(signum)


def install() -> None:
    """Route SIGTERM and SIGINT to :class:`Interrupted`."""
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
