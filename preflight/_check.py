"""The check: the plan, the retry loop around one probe, and the outcome."""

from __future__ import annotations

from typing import Any

from ._env import Options
from ._errors import PreflightError
from ._plan import Plan
from ._probe import ServerFacts, probe, require
from ._retry import Deadline, retrying


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
        facts = retrying(options, deadline, on_retry)(attempt)
        require(facts)
    except PreflightError as exc:
        exc.attempts = attempts
        exc.elapsed = deadline.elapsed()
        raise
    return Result(facts, attempts, deadline.elapsed())
