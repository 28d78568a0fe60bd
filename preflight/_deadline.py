"""One deadline over everything: the clock, the time left, and an alarm for what blocks.

Standard library only, so the migrate runner (inside the app's image, with no
tenacity) and the check share it.  The deadline is enforced twice: no sleep
runs past it, and :meth:`Deadline.alarm` interrupts whatever is blocking when it
passes (a connect, a TLS handshake, a query).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

# libpq (and psycopg) treat any connect_timeout below 2 seconds as 2.
MIN_CONNECT_TIMEOUT = 2


class DeadlineReached(BaseException):
    """The deadline passed while something was blocking; never retried.

    Raised bare by the alarm; a step that knows what it was waiting for raises it
    again with a ``reason``, a ``message`` and optionally a ``hint``.
    """

    def __init__(
        self, message: str | None = None, *, reason: str = "timeout", hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.hint = hint


class Deadline:
    """The overall deadline; ``timeout == 0`` means none."""

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
    ) -> None:
        self._clock = clock
        self.start = clock() if start is None else start
        self.timeout = timeout

    def elapsed(self) -> float:
        return self._clock() - self.start

    def remaining(self) -> float:
        if self.timeout == 0:
            return math.inf
        return self.timeout - self.elapsed()

    def connect_timeout(self, configured: int) -> int:
        """The per-attempt timeout for libpq: the configured one, clipped to the time left."""
        left = self.remaining()
        if left == math.inf:
            return configured
        return max(MIN_CONNECT_TIMEOUT, min(configured, math.ceil(left)))

    @contextlib.contextmanager
    def alarm(self) -> Iterator[None]:
        """Raise :class:`DeadlineReached` in the main thread when the deadline passes."""
        left = self.remaining()
        if left == math.inf or threading.current_thread() is not threading.main_thread():
            yield
            return
        if left <= 0:
            raise DeadlineReached

        def ring(_signum: int, _frame: FrameType | None) -> None:
            raise DeadlineReached

        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
