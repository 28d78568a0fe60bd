"""The retry policy: backoff bounds, jitter, deadline, per-attempt timeout, the alarm."""

from __future__ import annotations

import random
import time

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from preflight import AuthFailed, Reason, Unreachable
from preflight._deadline import Deadline, DeadlineReached
from preflight._errors import PreflightError, error_for
from preflight._exit_codes import REASONS
from preflight._options import Options
from preflight._retry import (
    UNKNOWN_LIMIT,
    Backoff,
    _Schedule,
    is_retryable,
    retrying,
)
from tests.support.clock import FakeTime


@given(
    initial=st.floats(0.001, 3600),
    factor=st.floats(1, 100),
    jitter=st.floats(0, 1),
    attempt=st.integers(1, 10_000),
    seed=st.integers(),
)
def test_delay_stays_within_its_band(
    initial: float, factor: float, jitter: float, attempt: int, seed: int
) -> None:
    """Every delay lies in [base * (1 - jitter), base] and never above the cap, even when huge."""
    cap = initial * factor
    backoff = Backoff(initial, cap, jitter, random.Random(seed))
    base = backoff.base(attempt)
    delay = backoff.delay(attempt)
    assert base <= cap
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


def test_default_schedule() -> None:
    """Defaults: 0.1 s doubling to a 0.8 s cap."""
    options = Options()
    backoff = Backoff(options.backoff_initial, options.backoff_max, options.jitter)
    assert [backoff.base(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.8, 0.8])


def test_jitter_spreads_processes() -> None:
    """Processes with different seeds draw different delays for the same attempt."""
    delays = {Backoff(0.1, 1, 0.5, random.Random(seed)).delay(8) for seed in range(20)}
    assert len(delays) == 20
    assert all(0.5 <= d <= 1.0 for d in delays)


def test_connect_timeout_clipped_to_time_left() -> None:
    """The per-attempt timeout shrinks with the deadline, never below libpq's 2 s."""
    fake = FakeTime()
    deadline = Deadline(10, clock=fake.clock)
    assert deadline.connect_timeout(5) == 5
    fake.now = 7.5
    assert deadline.connect_timeout(5) == 3
    fake.now = 9.9
    assert deadline.connect_timeout(5) == 2
    assert Deadline(0).connect_timeout(5) == 5


@pytest.mark.parametrize(
    ("exc", "retry_auth", "expected"),
    [
        (Unreachable("m", reason=Reason.REFUSED), False, True),
        (error_for(Reason.CONNECTION_LOST, "m"), False, True),
        (AuthFailed("m", reason=Reason.AUTH_FAILED), False, False),
        (AuthFailed("m", reason=Reason.AUTH_FAILED), True, True),
        (error_for(Reason.LIBPQ_OPTION, "m"), True, False),
        (error_for(Reason.TLS_UNTRUSTED, "m"), True, False),
        (ValueError("bug"), True, False),
    ],
)
def test_what_is_retried(exc: BaseException, retry_auth: bool, expected: bool) -> None:
    """What can heal always, auth only when opted in, nothing else."""
    assert is_retryable(exc, retry_auth) is expected


@pytest.mark.parametrize("reason", list(Reason))
def test_error_class_follows_the_table(reason: Reason) -> None:
    """error_for builds the subclass whose exit class the table names, for every reason."""
    error = error_for(reason, "m")
    assert isinstance(error, PreflightError)
    assert error.exit_class == REASONS[reason].exit_class
    assert error.retryable is REASONS[reason].retried


def _loop(fake: FakeTime, deadline: Deadline, jitter: float) -> tenacity.Retrying:
    """The policy on fake time: no real sleeping."""
    return retrying(
        deadline=deadline,
        backoff=Backoff(0.1, 0.8, jitter, random.Random(0)),
        retry_auth=False,
        before_sleep=lambda *a: None,
        sleep=fake.sleep,
        clock=fake.clock,
    )


def test_loop_stops_at_the_deadline_without_real_sleeping() -> None:
    """The loop retries until the deadline and never sleeps past it."""
    fake = FakeTime()
    deadline = Deadline(3, clock=fake.clock)
    calls: list[float] = []

    def attempt() -> None:
        calls.append(fake.now)
        raise Unreachable("down", reason=Reason.REFUSED)

    with pytest.raises(Unreachable):
        _loop(fake, deadline, jitter=0.5)(attempt)
    assert fake.now == pytest.approx(3)
    assert calls[-1] == pytest.approx(3)  # a last attempt right at the deadline
    assert 5 <= len(calls) <= 12


def test_unknown_failures_stop_after_the_limit_without_a_deadline() -> None:
    """With timeout 0 an unclassified failure is retried for UNKNOWN_LIMIT seconds, not forever."""
    fake = FakeTime()
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise error_for(Reason.UNKNOWN, "strange")

    with pytest.raises(Unreachable):
        _loop(fake, Deadline(0, clock=fake.clock), jitter=0)(attempt)
    assert UNKNOWN_LIMIT <= fake.now <= UNKNOWN_LIMIT + 1
    assert calls > 10


def test_alarm_interrupts_a_blocking_wait() -> None:
    """The deadline's alarm ends a sleep that would have run far past it."""
    deadline = Deadline(0.2)
    start = time.monotonic()
    with pytest.raises(DeadlineReached), deadline.alarm():
        time.sleep(5)
    assert time.monotonic() - start < 1.5


def test_alarm_is_off_without_a_deadline() -> None:
    """timeout 0: no alarm, the block runs to its end."""
    with Deadline(0).alarm():
        time.sleep(0.01)


R, S, T = Reason.REFUSED, Reason.STARTING_UP, Reason.TOO_MANY_CLIENTS


OWN = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.4)] + [(0.4, 0.8)] * 20  # attempt n's own band
PAY = (0.8, 1.6)  # twice the capped delay: pays one early login back


@pytest.mark.parametrize(
    ("reasons", "bands"),
    [
        ([R, R, R, R], OWN[:4]),  # nothing listens: the schedule climbs as before
        ([S, S, S], OWN[:3]),  # answered from the start: as before
        # starting up after refusals: quick steps, then one long pause per early login
        # (the knock's and the three quick ones), then the attempt's own again
        ([R] * 3 + [S] * 9, [*OWN[:3], *OWN[:3], PAY, PAY, PAY, PAY, OWN[3], OWN[3]]),
        ([R, R, T, T], [*OWN[:2], (0.2, 0.8), (0.4, 1.6)]),  # full: the crowded band at once
        ([R, R, S, T, S], [*OWN[:2], OWN[0], (0.4, 1.6), OWN[4]]),  # starting, then full
        ([S, S, R, R], OWN[:4]),  # a server that goes away keeps climbing
    ],
)
def test_schedule_bounds_the_restart_and_spreads_a_full_servers_herd(
    reasons: list[Reason], bands: list[tuple[float, float]]
) -> None:
    """Each delay's band: quick steps after refusals then "starting up", each paid back by
    a doubled pause; 'too many clients' from the usual low end up to twice the base."""
    for seed in range(50):
        schedule = _Schedule(Backoff(0.1, 0.8, 0.5, random.Random(seed)))
        got = [
            schedule.delay(number, error_for(reason, "x"))
            for number, reason in enumerate(reasons, start=1)
        ]
        assert all(lo <= d <= hi for d, (lo, hi) in zip(got, bands, strict=True)), got


@given(refusals=st.integers(3, 40), horizon=st.floats(4.8, 120))
def test_a_starting_server_never_sees_more_logins_than_the_plain_schedule(
    refusals: int, horizon: float
) -> None:
    """Without jitter, from six capped pauses on, a server starting up since an answered
    knock has seen no more logins than the plain schedule (one every 0.8 s) would have."""
    schedule = _Schedule(Backoff(0.1, 0.8, 0.0))
    for number in range(1, refusals + 1):
        schedule.delay(number, error_for(R, "x"))
    logins, now, number = 1, 0.0, refusals + 1  # the knock's login, at 0
    while (now := now + schedule.delay(number, error_for(S, "x"))) <= horizon:
        logins, number = logins + 1, number + 1
    assert logins <= int(horizon / 0.8) + 1


@given(attempt=st.integers(1, 200), jitter=st.floats(0, 1), seed=st.integers())
def test_crowded_delay_spreads_wider_and_slower_than_the_plain_one(
    attempt: int, jitter: float, seed: int
) -> None:
    """After 'too many clients' a delay is never below the plain band's low end and may
    reach twice the base: a turned-away herd spreads instead of coming back in step."""
    backoff = Backoff(0.1, 0.8, jitter, random.Random(seed))
    base = backoff.base(attempt)
    assert base * (1 - jitter) - 1e-12 <= backoff.crowded(attempt) <= 2 * base + 1e-12


def test_a_full_server_spreads_the_herd_over_three_times_the_plain_band() -> None:
    """After 'too many clients' at the cap, 400 processes' next delays cover 0.4-1.6 s, a mean
    near 1.0 s (the plain schedule's 0.4-0.8 s, mean 0.6, keeps a herd tighter and faster)."""
    rng = random.Random(7)
    delays = [
        _Schedule(Backoff(0.1, 0.8, 0.5, rng)).delay(9, error_for(T, "x")) for _ in range(400)
    ]
    assert min(delays) < 0.5
    assert max(delays) > 1.5
    assert 0.9 < sum(delays) / len(delays) < 1.1


def test_knock_gaps_spread_a_herd_over_200_ms() -> None:
    """Knock gaps are random over 25-200 ms (at most 40 a second), so a herd's first logins
    after a server begins to listen are spread over 200 ms, not bunched into 50."""
    backoff = Backoff(0.1, 0.8, 0.5, random.Random(3))
    gaps = [backoff.knock_gap() for _ in range(2000)]
    assert all(0.025 <= gap <= 0.2 for gap in gaps)
    assert min(gaps) < 0.03
    assert max(gaps) > 0.19


@pytest.mark.parametrize(
    ("message", "band"),
    [
        ("FATAL:  the database system is starting up", OWN[0]),
        ("FATAL:  the database system is not yet accepting connections", (0.2, 0.8)),
        ("FATAL:  the database system is not accepting connections", (0.2, 0.8)),
        ("FATAL:  the database system is in recovery mode", (0.2, 0.8)),
        ("FATAL:  the database system is shutting down", (0.2, 0.8)),
    ],
)
def test_a_recovering_server_gets_the_crowded_band_not_quick_steps(
    message: str, band: tuple[float, float]
) -> None:
    """After refusals, a start's first moments get a quick step; recovery, a standby or a
    shutdown (states that last) get the crowded band, so a herd that met a crash recovery
    comes back spread over 1.2 s instead of in step when the redo ends."""
    for seed in range(50):
        schedule = _Schedule(Backoff(0.1, 0.8, 0.5, random.Random(seed)))
        schedule.delay(1, error_for(R, "connection refused"))
        schedule.delay(2, error_for(R, "connection refused"))
        delay = schedule.delay(3, error_for(S, message))
        assert band[0] <= delay <= band[1], delay
        later = schedule.delay(4, error_for(S, message))
        assert (OWN[1] if band == OWN[0] else (0.4, 1.6))[0] <= later


def test_a_recovering_herd_comes_back_spread_over_1_2_s() -> None:
    """400 processes that met "not yet accepting connections" right after refusals (attempt 9,
    at the cap) come back over 0.4-1.6 s, mean near 1 s: no quick step bunches them."""
    rng = random.Random(11)
    recovering = error_for(S, "FATAL:  the database system is not yet accepting connections")
    delays = []
    for _ in range(400):
        schedule = _Schedule(Backoff(0.1, 0.8, 0.5, rng))
        schedule.delay(8, error_for(R, "connection refused"))
        delays.append(schedule.delay(9, recovering))
    assert min(delays) < 0.5
    assert max(delays) > 1.5
    assert 0.9 < sum(delays) / len(delays) < 1.1
