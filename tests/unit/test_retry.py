"""The retry policy: backoff bounds, jitter, deadline, per-attempt timeout."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight import AuthFailed, Unreachable
from preflight._env import Options
from preflight._retry import Backoff, Deadline, is_retryable, retrying


@given(
    initial=st.floats(0.001, 5),
    factor=st.floats(1, 100),
    jitter=st.floats(0, 1),
    attempt=st.integers(1, 10_000),
    seed=st.integers(),
)
def test_delay_stays_within_its_band(
    initial: float, factor: float, jitter: float, attempt: int, seed: int
) -> None:
    """Every delay lies in [base * (1 - jitter), base] and never above the cap."""
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
    """Two processes with different seeds do not wait the same time."""
    a = [Backoff(0.1, 1, 0.5, random.Random(1)).delay(8) for _ in range(1)]
    b = [Backoff(0.1, 1, 0.5, random.Random(2)).delay(8) for _ in range(1)]
    assert a != b


def test_connect_timeout_clipped_to_time_left() -> None:
    """The per-attempt timeout shrinks with the deadline, never below libpq's 2 s."""
    now = [0.0]
    deadline = Deadline(10, clock=lambda: now[0])
    assert deadline.connect_timeout(5) == 5
    now[0] = 7.5
    assert deadline.connect_timeout(5) == 3
    now[0] = 9.9
    assert deadline.connect_timeout(5) == 2
    assert Deadline(0).connect_timeout(5) == 5


@pytest.mark.parametrize(
    ("exc", "retry_auth", "expected"),
    [
        (Unreachable("m", reason="refused"), False, True),
        (AuthFailed("m", reason="auth_failed"), False, False),
        (AuthFailed("m", reason="auth_failed"), True, True),
        (ValueError("bug"), True, False),
    ],
)
def test_what_is_retried(exc: BaseException, retry_auth: bool, expected: bool) -> None:
    """Unreachable always, auth only when opted in, nothing else."""
    assert is_retryable(exc, retry_auth) is expected


def test_loop_stops_at_the_deadline_without_real_sleeping() -> None:
    """The loop retries until the deadline and never sleeps past it."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    deadline = Deadline(3, clock=lambda: now[0])
    calls = []

    def attempt() -> None:
        calls.append(now[0])
        raise Unreachable("down", reason="refused")

    loop = retrying(Options(timeout=3), deadline, lambda *a: None, sleep, random.Random(0))
    with pytest.raises(Unreachable):
        loop(attempt)
    assert now[0] == pytest.approx(3)
    assert calls[-1] == pytest.approx(3)  # a last attempt right at the deadline
    assert len(calls) <= 12
