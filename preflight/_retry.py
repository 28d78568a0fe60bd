"""The retry policy: exponential backoff with jitter, a cap, and one deadline over everything.

Built on tenacity, one loop for every attempt.  With the defaults (0.1 s
doubling to a 0.8 s cap, half of each delay random) the delays are 0.05-0.1,
0.1-0.2, 0.2-0.4 s and then 0.4-0.8 s for good: a waiting process logs in
about 1.5 times a second, and a hundred processes started together drift apart
instead of logging in in lockstep.  While nothing listens, the check knocks
between those logins (:data:`KNOCK_GAP`, ``_check.py``), which is what notices
a database that comes up within tens of milliseconds (benchmarks/RESULTS.md).

The deadline is enforced twice: no sleep runs past it, and :meth:`Deadline.alarm`
interrupts whatever is blocking when it passes (a connect, a TLS handshake, a
query), so a run ends within the timeout whatever hangs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import tenacity

from ._deadline import Deadline
from ._errors import PreflightError
from ._failures import lasting

# With no deadline, an unclassified failure is retried for this long in a row at most.
UNKNOWN_LIMIT = 60.0
# While nothing listens (connection refused), the pause between two logins knocks
# every 25-200 ms, at random: at most 40 knocks a second per process, about 9 on
# average (_check.py).  The width spreads a herd's first logins over 200 ms once
# a server listens, so fewer land in its start-up window.
KNOCK_GAP = (0.025, 0.2)
# After "too many clients" a delay reaches up to this many times the base.
CROWDED = 2.0


class Backoff:
    """Delay before retry ``n``: ``base = min(cap, initial * 2**(n-1))``, of which a
    ``jitter`` share is drawn uniformly at random."""

    def __init__(
        self, initial: float, cap: float, jitter: float, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def base(self, attempt: int) -> float:
        exponent = min(attempt - 1, 64)  # 2**64 * any allowed delay stays finite
        return float(min(self.cap, self.initial * 2.0**exponent))

    def delay(self, attempt: int) -> float:
        base = self.base(attempt)
        return base * (1 - self.jitter) + self._rng.uniform(0, base * self.jitter)

    def crowded(self, attempt: int) -> float:
        """Delay after "too many clients": from the usual low end up to twice the base
        (0.4-1.6 s at the default cap, mean 1 s), so a herd that a full server turned
        away spreads over 1.2 s and comes back less often than the plain schedule
        (0.4-0.8 s) would bring it."""
        base = self.base(attempt)
        return self._rng.uniform(base * (1 - self.jitter), CROWDED * base)

    def knock_gap(self) -> float:
        """The pause before the next knock (:data:`KNOCK_GAP`)."""
        return self._rng.uniform(*KNOCK_GAP)


def is_retryable(exc: BaseException, retry_auth: bool) -> bool:
    """Whether waiting can heal ``exc`` (authentication only when asked to retry it)."""
    if not isinstance(exc, PreflightError):
        return False
    if exc.retryable:
        return True
    return retry_auth and exc.exit_class.name == "auth_failed"


class _UnknownStreak:
    """Stops an unclassified failure from being retried forever when there is no deadline."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._since: float | None = None

    def too_long(self, exc: BaseException | None) -> bool:
        if not isinstance(exc, PreflightError) or exc.reason != "unknown":
            self._since = None
            return False
        now = self._clock()
        if self._since is None:
            self._since = now
        return now - self._since >= UNKNOWN_LIMIT


class _Schedule:
    """The delay before the next attempt: the attempt's own backoff step, except
    while a server that has just begun to listen says it is starting up, is in
    recovery, or when a full server turns the login away.

    A refused login reaches no server (nothing listens), so a long refusal says
    nothing about how busy the server will be.  When the first answer after
    refusals is "the database system is starting up" (a start's first moments,
    which end within tens of milliseconds), the steps count from 1 again
    (0.05-0.1, 0.1-0.2, 0.2-0.4 s) for as long as they are shorter than the
    attempt's own, which is what notices the end of a short start-up fast.  Those
    logins, and the one the answered knock began before its pause was over, came
    early: each is paid back by one pause of twice the attempt's own delay while
    the server still starts up, so a starting server never sees more logins than
    the plain schedule would have made (benchmarks/RESULTS.md 2b).

    A 57P03 that names a state which lasts as long as the server needs
    (:func:`_failures.lasting`: "not yet accepting connections" while the redo of
    a crash recovery runs, a standby, a shutdown) gets no quick steps but
    :meth:`Backoff.crowded`, as "too many clients" does: a herd whose knocks all
    landed in a crash recovery would otherwise come back in step the moment the
    recovery ends and fill a small server's slots at once (benchmarks/RESULTS.md
    3); spread over 1.2 s, it comes back at a pace the server can take.
    """

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._refused = False
        self._since: int | None = None  # the first "starting up" after refusals
        self._owed = 0  # early logins still to pay back

    def delay(self, attempt: int, exc: BaseException | None) -> float:
        reason = exc.reason if isinstance(exc, PreflightError) else None
        backoff = self._backoff
        starting = reason == "starting_up"
        lasts = starting and isinstance(exc, PreflightError) and lasting(exc.message)
        if not starting or lasts:
            self._since, self._owed = None, 0
        elif self._refused and self._since is None:
            self._since, self._owed = attempt, 1  # the answered knock's login was early
        self._refused = reason == "refused"
        if reason == "too_many_clients" or lasts:
            return backoff.crowded(attempt)
        if self._since is not None:
            step = attempt - self._since + 1
            if backoff.base(step) < backoff.base(attempt):
                self._owed += 1
                return backoff.delay(step)
            if self._owed:
                self._owed -= 1
                return 2 * backoff.delay(attempt)
        return backoff.delay(attempt)


def retrying(
    *,
    deadline: Deadline,
    backoff: Backoff,
    retry_auth: bool,
    before_sleep: Callable[[PreflightError, int, float], None],
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tenacity.Retrying:
    """The tenacity loop, every attempt from the first: retries what can heal, until
    the deadline, and (with no deadline) an unclassified failure for
    :data:`UNKNOWN_LIMIT` seconds in a row at most."""
    streak = _UnknownStreak(clock)
    schedule = _Schedule(backoff)

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        # Never sleep past the deadline: the last attempt happens right at it.
        delay = schedule.delay(state.attempt_number, failure)
        return max(0.0, min(delay, deadline.remaining()))

    def stop(state: tenacity.RetryCallState) -> bool:
        failure = state.outcome.exception() if state.outcome else None
        return deadline.remaining() <= 0 or (deadline.timeout == 0 and streak.too_long(failure))

    def report(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert isinstance(exc, PreflightError)
        before_sleep(exc, state.attempt_number, state.upcoming_sleep)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: is_retryable(e, retry_auth)),
        wait=wait,
        stop=stop,
        before_sleep=report,
        sleep=sleep,
        reraise=True,
    )
