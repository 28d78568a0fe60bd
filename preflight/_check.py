"""The check: the plan, the retry loop around one probe, and the outcome."""

from __future__ import annotations

from typing import Any

from ._env import Options
from ._errors import PreflightError
from ._plan import Plan
from ._probe import ServerFacts, probe, require
from ._retry import Deadline, is_retryable, retrying


class Result:
    """A ready database: the facts and how long it took."""

    def __init__(self, facts: ServerFacts, attempts: int, elapsed: float) -> None:
        self.facts = facts
        self.attempts = attempts
        self.elapsed = elapsed


def check(plan: Plan, options: Options, log: Any) -> Result:
    """Probe until ready; raise the classified :class:`PreflightError` otherwise."""
    deadline = Deadline(options.timeout)
    attempts = 0

    def attempt() -> ServerFacts:
        nonlocal attempts
        attempts += 1
        timeout = deadline.connect_timeout(options.connect_timeout)
        return probe(plan, timeout, options.require_extensions)

    def on_retry(exc: PreflightError, number: int, delay: float) -> None:
        log.warning(
            "preflight.attempt_failed",
            attempt=number,
            reason=exc.reason,
            message=exc.message,
            next_delay=round(delay, 3),
            elapsed=round(deadline.elapsed(), 3),
        )

    try:
        try:
            facts = attempt()
        except PreflightError as first:
            if not is_retryable(first, options.retry_auth):
                raise
            # The retry loop (and tenacity) load only now: a database that is
            # up at once never pays for them.  The loop replays the first
            # failure as its attempt 1, so logging and delays are as usual.
            replay = [first]

            def again() -> ServerFacts:
                if replay:
                    raise replay.pop()
                return attempt()

            facts = retrying(options, deadline, on_retry)(again)
        require(facts)
    except PreflightError as exc:
        exc.attempts = attempts
        exc.elapsed = deadline.elapsed()
        raise
    return Result(facts, attempts, deadline.elapsed())
