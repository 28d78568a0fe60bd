"""The retry policy: exponential backoff with jitter, a cap and a deadline.

Built on tenacity.  With the defaults (0.1 s doubling to a 0.8 s cap, half of
each delay random) the delays are 0.05-0.1, 0.1-0.2, 0.2-0.4 s and then
0.4-0.8 s for good: a database that comes up is noticed in about 0.3-0.5 s
(median, benchmarks/RESULTS.md), a waiting process tries about 1.5 times a
second, and a hundred processes started together drift apart instead of
knocking in lockstep.  (A 1.0 s cap measured a 0.68 s median: too slow.)
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._env import Options
from ._errors import AuthFailed, PreflightError, Unreachable

if TYPE_CHECKING:  # tenacity loads only when a first attempt has failed
    import tenacity


# libpq (and psycopg) treat any connect_timeout below 2 seconds as 2.
MIN_CONNECT_TIMEOUT = 2


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
        exponent = min(attempt - 1, 64)  # avoid overflow on very long waits
        return float(min(self.cap, self.initial * 2.0**exponent))

    def delay(self, attempt: int) -> float:
        base = self.base(attempt)
        return base * (1 - self.jitter) + self._rng.uniform(0, base * self.jitter)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.delay(retry_state.attempt_number)


class Deadline:
    """The overall deadline; ``timeout == 0`` means none."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock()
        self.timeout = timeout

    def elapsed(self) -> float:
        return self._clock() - self.start

    def remaining(self) -> float:
        if self.timeout == 0:
            return math.inf
        return self.timeout - self.elapsed()

    def connect_timeout(self, configured: int) -> int:
        """The per-attempt timeout: the configured one, clipped to the time left."""
        left = self.remaining()
        if left == math.inf:
            return configured
        return max(MIN_CONNECT_TIMEOUT, min(configured, math.ceil(left)))


def is_retryable(exc: BaseException, retry_auth: bool) -> bool:
    if isinstance(exc, Unreachable):
        return True
    return retry_auth and isinstance(exc, AuthFailed)


def retrying(
    options: Options,
    deadline: Deadline,
    on_retry: Callable[[PreflightError, int, float], None],
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tenacity.Retrying:
    """The tenacity loop for ``options``: retries what can heal, until the deadline."""
    import tenacity

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert isinstance(exc, PreflightError)
        on_retry(exc, state.attempt_number, state.upcoming_sleep)

    backoff = Backoff(options.backoff_initial, options.backoff_max, options.jitter, rng)

    def wait(state: tenacity.RetryCallState) -> float:
        # Never sleep past the deadline: the last attempt happens right at it.
        return max(0.0, min(backoff(state), deadline.remaining()))

    def past_deadline(_state: tenacity.RetryCallState) -> bool:
        return deadline.remaining() <= 0

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: is_retryable(e, options.retry_auth)),
        wait=wait,
        stop=tenacity.stop_never if options.timeout == 0 else past_deadline,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
