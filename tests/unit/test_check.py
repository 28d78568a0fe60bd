"""The check loop with a fake probe: delays, deadline, attempts, what ends it, the hook."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from preflight import Reason
from preflight._check import Outcome, RetryDetails, check
from preflight._config import load
from preflight._errors import PreflightError, error_for
from preflight._options import Options
from preflight._plan import Plan
from preflight._probe import Extensions, ServerFacts
from preflight._retry import Backoff, Deadline
from tests.support.clock import FakeTime

FACTS = ServerFacts("15.18", tls=True, tls_protocol="TLSv1.3", in_recovery=False, address=None)


def _plan() -> Plan:
    plan = load({"SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"}).plan
    assert plan is not None
    return plan


def run(
    script: list[PreflightError | ServerFacts],
    options: Options | None = None,
    attempt_cost: float = 0.0,
) -> tuple[Outcome, list[RetryDetails], FakeTime]:
    """Run the loop over a scripted probe: each call pops the next result."""
    options = options or Options(timeout=10)
    fake = FakeTime()
    seen: list[RetryDetails] = []
    results = list(script)

    def probe(plan: Plan, deadline: Deadline, **_kwargs: Any) -> ServerFacts:
        fake.now += attempt_cost
        result = results.pop(0) if len(results) > 1 else results[0]
        if isinstance(result, PreflightError):
            raise result
        return result

    outcome = check(
        _plan(),
        options,
        on_retry=seen.append,
        probe=probe,
        deadline=Deadline(options.timeout, clock=fake.clock),
        sleep=fake.sleep,
        backoff=Backoff(0.1, 0.8, 0.5, random.Random(0)),
    )
    return outcome, seen, fake


REFUSED = error_for(Reason.REFUSED, "connection refused")


def test_ready_at_once() -> None:
    """One attempt, no retries, no hook calls."""
    outcome, seen, _ = run([FACTS])
    assert (outcome.facts, outcome.error, outcome.attempts) == (FACTS, None, 1)
    assert seen == []


def test_ready_after_retries_reports_each_failure_to_the_hook() -> None:
    """Each failed attempt reaches the hook with its number, delay and elapsed time."""
    outcome, seen, _ = run([REFUSED, REFUSED, REFUSED, FACTS])
    assert outcome.facts == FACTS
    assert outcome.attempts == 4
    assert [d.attempt for d in seen] == [1, 2, 3]
    assert all(d.error.reason is Reason.REFUSED for d in seen)
    assert [d.elapsed for d in seen] == sorted(d.elapsed for d in seen)
    assert all(0.05 <= d.next_delay <= 0.8 for d in seen)


@pytest.mark.parametrize(
    "reason",
    [
        Reason.AUTH_FAILED,
        Reason.PG_HBA_REJECTED,
        Reason.DATABASE_MISSING,
        Reason.DATABASE_CLOSED,
        Reason.TLS_UNTRUSTED,
        Reason.LIBPQ_OPTION,
        Reason.AUTH_METHOD,
    ],
)
def test_what_cannot_heal_ends_at_once(reason: Reason) -> None:
    """A failure that waiting cannot fix ends the loop after one attempt."""
    outcome, seen, _ = run([error_for(reason, "no")])
    assert outcome.error is not None
    assert outcome.error.reason is reason
    assert (outcome.attempts, seen) == (1, [])


def test_retry_auth_keeps_trying() -> None:
    """PREFLIGHT_RETRY_AUTH makes an auth failure retryable until it heals."""
    denied = error_for(Reason.AUTH_FAILED, "password authentication failed")
    outcome, seen, _ = run([denied, denied, FACTS], Options(timeout=10, retry_auth=True))
    assert (outcome.facts, outcome.attempts, len(seen)) == (FACTS, 3, 2)


def test_deadline_ends_the_loop_with_the_last_reason() -> None:
    """Retries stop at the deadline; the outcome carries the last reason, attempts and time."""
    outcome, seen, fake = run([REFUSED], Options(timeout=3))
    assert outcome.error is not None
    assert outcome.error.reason is Reason.REFUSED
    assert outcome.attempts == len(seen) + 1
    assert outcome.elapsed == pytest.approx(3)
    assert fake.now == pytest.approx(3)


def test_missing_extension_fails_check() -> None:
    """A required extension that is not installed is exit 7 after one attempt."""
    facts = FACTS._replace(extensions=Extensions(available=("vector",)))
    outcome, _, _ = run([facts], Options(timeout=10, require_extensions=("vector",)))
    assert outcome.error is not None
    assert (outcome.error.reason, outcome.error.exit_code) == (Reason.EXTENSION_MISSING, 7)
    assert "vector" in outcome.error.message
    assert "/docker-entrypoint-initdb.d" in outcome.error.message  # the hint for `db`


def test_the_alarm_cuts_a_probe_that_hangs() -> None:
    """A probe that blocks past the deadline is interrupted; the outcome says timeout."""

    def hang(plan: Plan, deadline: Deadline, **_kwargs: Any) -> ServerFacts:
        time.sleep(10)
        return FACTS

    start = time.monotonic()
    outcome = check(_plan(), Options(timeout=0.3), probe=hang)
    assert time.monotonic() - start < 1.5
    assert outcome.error is not None
    assert outcome.error.reason is Reason.TIMEOUT
    assert outcome.attempts == 1


def test_the_alarm_keeps_the_reason_of_an_earlier_failure() -> None:
    """Cut short after a refused attempt, the outcome reports the refusal, not a bare timeout."""
    calls: list[int] = []

    def flaky(plan: Plan, deadline: Deadline, **_kwargs: Any) -> ServerFacts:
        calls.append(1)
        if len(calls) == 1:
            raise REFUSED
        time.sleep(10)
        return FACTS

    outcome = check(_plan(), Options(timeout=0.5), probe=flaky)
    assert outcome.error is not None
    assert outcome.error.reason is Reason.REFUSED
    assert "deadline" in outcome.error.message


def test_no_hook_is_needed() -> None:
    """The hook is optional: the default does nothing."""
    probe: Callable[..., ServerFacts] = lambda *_a, **_k: FACTS  # noqa: E731
    assert check(_plan(), Options(timeout=1), probe=probe).facts == FACTS
