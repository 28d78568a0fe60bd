"""The check: the retry loop around one probe, and its outcome.

The loop does not log.  It reports each failed attempt to an instrumentation
hook (``on_retry``, as stamina's instrumentation does) and returns an
:class:`Outcome` that carries the attempts and the time taken, whether the
database became ready or not.

Between two logins it sleeps the backoff, except after a refusal: then nothing
listens, and the pause knocks every 25-200 ms (:func:`_probe.knock`, the first
step of the next login, which a refusal keeps from reaching any server) and
ends the moment something answers, the next login going on from that knock.
A pause ends early at most once, so logins never come faster than the
schedule; after anything but a refusal the pause is the plain backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ._deadline import Deadline, DeadlineReached
from ._errors import PreflightError, error_for
from ._exit_codes import Reason
from ._options import Options
from ._plan import Plan
from ._probe import Doorstep, ServerFacts, knock, probe, require
from ._retry import Backoff, retrying


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
        doorstep: Doorstep | None = None,
    ) -> ServerFacts: ...


Knock = Callable[[Doorstep, float], "bool | None"]


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


def _knock_meanwhile(
    delay: float,
    deadline: Deadline,
    backoff: Backoff,
    knock: Callable[[float], bool | None],
    sleep: Callable[[float], Any],
) -> None:
    """Sleep ``delay``, knocking every :data:`_retry.KNOCK_GAP`; stop at an answer."""
    until = deadline.elapsed() + delay
    while (left := until - deadline.elapsed()) > 0:
        sleep(min(left, backoff.knock_gap()))
        left = until - deadline.elapsed()
        if left <= 0:
            return
        knocked = knock(left)
        if knocked is None:  # nowhere to knock: sleep out the rest
            sleep(left)
            return
        if knocked:
            return


def check(
    plan: Plan,
    options: Options,
    *,
    on_retry: Callable[[RetryDetails], None] = lambda _details: None,
    probe: Probe = probe,
    deadline: Deadline | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    backoff: Backoff | None = None,
    knock: Knock = knock,
) -> Outcome:
    """Probe until ready, a failure that cannot heal, or the deadline."""
    deadline = deadline or Deadline(options.timeout)
    backoff = backoff or Backoff(options.backoff_initial, options.backoff_max, options.jitter)
    attempts = 0
    last: PreflightError | None = None
    doorstep = Doorstep()

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
            doorstep=doorstep,
        )
        require(facts, plan.kind)
        return facts

    def before_sleep(error: PreflightError, number: int, delay: float) -> None:
        nonlocal last
        last = error
        on_retry(RetryDetails(number, error, delay, deadline.elapsed(), options.timeout))

    def pause(delay: float) -> None:
        if last is not None and last.reason is Reason.REFUSED:
            _knock_meanwhile(delay, deadline, backoff, lambda wait: knock(doorstep, wait), sleep)
        else:
            sleep(delay)

    loop = retrying(
        deadline=deadline,
        backoff=backoff,
        retry_auth=options.retry_auth,
        before_sleep=before_sleep,
        sleep=pause,
    )
    try:
        with deadline.alarm():
            facts = loop(attempt)
    except PreflightError as error:
        return Outcome(None, error, attempts, deadline.elapsed())
    except DeadlineReached as cut:
        return Outcome(None, _deadline_error(cut, last, deadline), attempts, deadline.elapsed())
    finally:
        doorstep.close()
    return Outcome(facts, None, attempts, deadline.elapsed())
