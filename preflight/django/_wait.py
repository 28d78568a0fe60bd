"""Waiting under the one deadline: for the lock, for the schema, for a server that heals.

Pure (standard library only, no database): the caller's ``attempt`` says what is
still awaited, this loop decides when to ask again, when to say so in the log,
and when the deadline ends the wait.  Tested on a fake clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .._deadline import Deadline
from .._errors import PreflightError

POLL_SECONDS = 0.25  # how often a waiter asks again (plus up to 20 % jitter)
LOG_EVERY_SECONDS = 5.0  # how often a waiter logs that it is still waiting


class Awaited(NamedTuple):
    """What is not there yet: the error the deadline would end the run with, and the
    fields that describe it in the log (the lock's holder, the unapplied migrations)."""

    error: PreflightError
    fields: dict[str, Any]
    every_time: bool = False  # log every attempt (a failing connection), not every few s


class Waiter:
    """Polls until done, logging at once and then every few seconds; raises the awaited
    error when the deadline passes.  ``clock``, ``sleep`` and ``rng`` are for tests."""

    def __init__(
        self,
        deadline: Deadline,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        rng: random.Random | None = None,
        poll: float = POLL_SECONDS,
        log_every: float = LOG_EVERY_SECONDS,
    ) -> None:
        self.deadline = deadline
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.poll = poll
        self.log_every = log_every

    def wait(
        self,
        attempt: Callable[[], Awaited | None],
        report: Callable[[Awaited, float], None],
    ) -> float:
        """Call ``attempt`` until it returns None; returns the seconds waited."""
        started = self._clock()
        next_log = started
        while True:
            awaited = attempt()
            now = self._clock()
            waited = round(now - started, 3)
            if awaited is None:
                return waited
            if awaited.every_time or now >= next_log:
                report(awaited, waited)
                while next_log <= now:
                    next_log += self.log_every
            if self.deadline.remaining() <= 0:
                raise awaited.error
            pause = self.poll * (1 + 0.2 * self._rng.random())
            self._sleep(max(0.0, min(pause, self.deadline.remaining())))
