"""The check loop with a fake probe: delays, deadline, attempts, what ends it, the hook."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from preflight import Reason
from preflight._check import Outcome, RetryDetails, check
from preflight._config import load
from preflight._deadline import Deadline
from preflight._errors import PreflightError, error_for
from preflight._extensions import Extensions
from preflight._options import Options
from preflight._plan import Plan
from preflight._probe import ServerFacts
from preflight._retry import Backoff
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


# --- knocks while nothing listens ---------------------------------------------------


def knocking_run(
    script: list[PreflightError | ServerFacts], answers: list[bool], timeout: float = 10
) -> tuple[Outcome, FakeTime, list[float], list[float]]:
    """Run the loop over a scripted probe that leaves a door to knock at, and a scripted
    knock: (outcome, fake time, when each knock came, when each attempt came)."""
    fake = FakeTime()
    results = list(script)
    knocks: list[float] = []
    attempts: list[float] = []

    def probe(plan: Plan, deadline: Deadline, **kwargs: Any) -> ServerFacts:
        attempts.append(fake.now)
        kwargs["doorstep"].doors = [(None, "host=db")]
        result = results.pop(0) if len(results) > 1 else results[0]
        if isinstance(result, PreflightError):
            raise result
        return result

    def knock(_doorstep: Any, wait: float) -> bool:
        assert wait > 0
        knocks.append(fake.now)
        return answers.pop(0) if answers else False

    outcome = check(
        _plan(),
        Options(timeout=timeout),
        probe=probe,
        deadline=Deadline(timeout, clock=fake.clock),
        sleep=fake.sleep,
        backoff=Backoff(0.1, 0.8, 0.5, random.Random(0)),
        knock=knock,
    )
    return outcome, fake, knocks, attempts


def test_an_answered_knock_ends_the_pause_at_once() -> None:
    """After a refusal the pause knocks; the first answer starts the next attempt right then."""
    fake = FakeTime()
    up_at = 2.0  # the server begins to listen
    knocks: list[float] = []
    attempts: list[float] = []

    def probe(plan: Plan, deadline: Deadline, **kwargs: Any) -> ServerFacts:
        attempts.append(fake.now)
        kwargs["doorstep"].doors = [(None, "host=db")]
        if fake.now < up_at:
            raise REFUSED
        return FACTS

    def knock(_doorstep: Any, _wait: float) -> bool:
        knocks.append(fake.now)
        return fake.now >= up_at

    outcome = check(
        _plan(),
        Options(timeout=10),
        probe=probe,
        deadline=Deadline(10, clock=fake.clock),
        sleep=fake.sleep,
        backoff=Backoff(0.1, 0.8, 0.5, random.Random(0)),
        knock=knock,
    )
    assert outcome.facts == FACTS
    assert attempts[-1] == knocks[-1]  # the attempt goes on from the answered knock
    assert up_at <= attempts[-1] <= up_at + 0.2  # the next knock after the server came up
    assert len(attempts) == outcome.attempts


def test_knocks_are_bounded_and_logins_keep_the_schedule() -> None:
    """Never answered: at most 40 knocks a second, and the attempts come as without knocks."""
    outcome, fake, knocks, attempts = knocking_run([REFUSED], [], timeout=5)
    assert outcome.error is not None
    assert outcome.error.reason is Reason.REFUSED
    gaps = [b - a for a, b in itertools.pairwise(knocks)]
    assert min(gaps) >= 0.025 - 1e-9
    assert len(knocks) <= 40 * fake.now
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for number, gap in enumerate(gaps[:-1], start=1):
        base = min(0.8, 0.1 * 2 ** (number - 1))
        assert base / 2 - 1e-9 <= gap <= base + 1e-9  # the backoff's band, knocks or not


@pytest.mark.parametrize(
    "reason",
    [Reason.STARTING_UP, Reason.POOLER_WAITING, Reason.TOO_MANY_CLIENTS, Reason.TIMEOUT],
)
def test_no_knocks_after_anything_but_a_refusal(reason: Reason) -> None:
    """A server (or pooler) that answered, or a silent one, gets the plain backoff: no knocks."""
    outcome, _, knocks, attempts = knocking_run([error_for(reason, "no")], [True] * 100, 3)
    assert outcome.error is not None
    assert knocks == []
    assert len(attempts) <= 12


def test_a_knock_that_answers_then_starting_up_gets_quick_steps_then_pays_them_back() -> None:
    """Refused, refused, then a starting server: 0.05-0.1, 0.1-0.2, 0.2-0.4 s, then doubled
    pauses that give back the early logins, never at knock pace."""
    script = [REFUSED] * 8 + [error_for(Reason.STARTING_UP, "starting up")] * 6 + [FACTS]
    outcome, _, knocks, attempts = knocking_run(script, [])
    assert outcome.facts == FACTS
    gaps = [b - a for a, b in itertools.pairwise(attempts[8:])]
    bands = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.8, 1.6), (0.8, 1.6), (0.8, 1.6)]
    assert all(low <= gap <= high for gap, (low, high) in zip(gaps, bands, strict=True))
    assert knocks
    assert max(knocks) < attempts[8]  # none after the server answered


def test_nowhere_to_knock_sleeps_the_whole_delay() -> None:
    """A probe that recorded no door (no attempt connected yet): the pause is one plain sleep."""
    fake = FakeTime()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        fake.sleep(seconds)

    def probe(plan: Plan, deadline: Deadline, **_kwargs: Any) -> ServerFacts:
        raise REFUSED

    check(
        _plan(),
        Options(timeout=2),
        probe=probe,
        deadline=Deadline(2, clock=fake.clock),
        sleep=sleep,
        backoff=Backoff(0.1, 0.8, 0.5, random.Random(0)),
        knock=lambda _doorstep, _wait: None,
    )
    assert max(slept) > 0.3  # the capped delays, not cut into knock gaps
