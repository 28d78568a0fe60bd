"""The check: the retry loop around one probe, and its outcome.

The loop does not log.  It reports each failed attempt to an instrumentation
hook (``on_retry``, as stamina's instrumentation does) and returns an
:class:`Outcome` that carries the attempts and the time taken, whether the
database became ready or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ._errors import PreflightError, error_for
from ._exit_codes import Reason
from ._options import Options
from ._plan import Plan
from ._probe import ServerFacts, probe, require
from ._retry import Backoff, Deadline, DeadlineReached, is_retryable, retrying


class RetryDetails(NamedTuple):
    """What the hook learns about one failed attempt that will be retried."""

    attempt: int
    error: PreflightError
    next_delay: float
    elapsed: float
    timeout: float


class Probe(Protocol):
    def __call__(
        self,
        plan: Plan,
        deadline: Deadline,
        *,
        connect_timeout: int,
        require_extensions: tuple[str, ...] = (),
        create_extensions: bool = False,
        reread_password: bool = False,
    ) -> ServerFacts: ...


class Outcome(NamedTuple):
    """How the check ended: ``facts`` when ready, ``error`` otherwise."""

    facts: ServerFacts | None
    error: PreflightError | None
    attempts: int
    elapsed: float


def _deadline_error(
    cut: DeadlineReached, last: PreflightError | None, deadline: Deadline
) -> PreflightError:
    """The error to report when the deadline cut an attempt short."""
    when = f"the deadline ({deadline.timeout:g} s) passed during an attempt"
    if cut.message is not None:
        return error_for(Reason(cut.reason), f"{when}: {cut.message}", hint=cut.hint)
    if last is not None and last.retryable:
        return error_for(
            last.reason, f"{last.message} (then {when}, which it cut short)", hint=last.hint
        )
    return error_for(Reason.TIMEOUT, f"{when}: nothing answered in time")


def _run(
    attempt: Callable[[], ServerFacts],
    before_sleep: Callable[[PreflightError, int, float], None],
    deadline: Deadline,
    backoff: Backoff,
    options: Options,
    sleep: Callable[[float], Any],
) -> ServerFacts:
    """The first attempt, then (only if it failed and can heal) the tenacity loop.

    Most runs meet a database that is up and end after one attempt, so the retry
    machinery is built only when it is needed: tenacity's import is 4 ms, 3% of the
    start-up floor (benchmarks/RESULTS.md).
    """
    try:
        return attempt()
    except PreflightError as failure:
        if not is_retryable(failure, options.retry_auth) or deadline.remaining() <= 0:
            raise
        delay = max(0.0, min(backoff.delay(1), deadline.remaining()))
        before_sleep(failure, 1, delay)
        sleep(delay)
    loop = retrying(
        deadline=deadline,
        backoff=backoff,
        retry_auth=options.retry_auth,
        before_sleep=before_sleep,
        sleep=sleep,
        first=2,
    )
    return loop(attempt)


def check(
    plan: Plan,
    options: Options,
    *,
    on_retry: Callable[[RetryDetails], None] = lambda _details: None,
    probe: Probe = probe,
    deadline: Deadline | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    backoff: Backoff | None = None,
) -> Outcome:
    """Probe until ready, a failure that cannot heal, or the deadline."""
    deadline = deadline or Deadline(options.timeout)
    backoff = backoff or Backoff(options.backoff_initial, options.backoff_max, options.jitter)
    attempts = 0
    last: PreflightError | None = None

    def attempt() -> ServerFacts:
        nonlocal attempts
        attempts += 1
        facts = probe(
            plan,
            deadline,
            connect_timeout=options.connect_timeout,
            require_extensions=options.require_extensions,
            create_extensions=options.create_extensions,
            reread_password=options.retry_auth and attempts > 1,
        )
        require(facts, plan.kind)
        return facts

    def before_sleep(error: PreflightError, number: int, delay: float) -> None:
        nonlocal last
        last = error
        on_retry(RetryDetails(number, error, delay, deadline.elapsed(), options.timeout))

    try:
        with deadline.alarm():
            facts = _run(attempt, before_sleep, deadline, backoff, options, sleep)
    except PreflightError as error:
        return Outcome(None, error, attempts, deadline.elapsed())
    except DeadlineReached as cut:
        return Outcome(None, _deadline_error(cut, last, deadline), attempts, deadline.elapsed())
    return Outcome(facts, None, attempts, deadline.elapsed())
