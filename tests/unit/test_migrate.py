"""The migrate runner's pure parts, and the rule that makes preflight/django/ a directory
of standard library and Django only."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import preflight.django
from preflight._deadline import Deadline
from preflight._errors import PreflightError, error_for
from preflight._exit_codes import REASONS, Reason
from preflight._jsonlog import Writer
from preflight._redact import Redactor
from preflight._values import parse_seconds
from preflight.django import _steps
from preflight.django.__main__ import Exit, Run, _port, read_options
from preflight.django._lock import Holder, lock_key, lock_options, lock_parts
from preflight.django._steps import CommandFailed, LockTimedOut, exit_status, lock_not_available
from preflight.django._wait import Awaited, Waiter
from tests.support.clock import FakeTime

DJANGO_DIR = Path(preflight.django.__file__).parent
FORBIDDEN = ("structlog", "tenacity", "psycopg", "psycopg2")


def _modules() -> list[str]:
    return sorted(
        f"preflight.django.{path.stem}" if path.stem != "__init__" else "preflight.django"
        for path in DJANGO_DIR.glob("*.py")
    )


@pytest.mark.parametrize("module", _modules())
def test_django_directory_imports_no_check_dependency(module: str) -> None:
    """Every module under preflight/django/ imports with structlog, tenacity and both
    drivers made unimportable, and loads none of them (nor Django, at import)."""
    code = (
        "import sys, importlib\n"
        f"for name in {FORBIDDEN!r}: sys.modules[name] = None\n"
        f"importlib.import_module({module!r})\n"
        "loaded = {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        f"assert not loaded & {{*{FORBIDDEN!r}, 'django'}}, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_runner_is_in_the_directory() -> None:
    """The rule above covers the runner: it lives in preflight/django/."""
    assert "preflight.django.__main__" in _modules()


@pytest.mark.parametrize(
    ("database", "key"),
    # Pinned: runners of two releases during a rolling update must take the same lock
    # (tests/integration/test_migrate.py checks LOCK_KEY_SQL agrees on a live server).
    [("app", 7919262888162814900), ("balancer", 4662747917323649888)],
)
def test_lock_key_is_stable(database: str, key: int) -> None:
    """The key of a database name never changes between releases."""
    assert lock_key(database) == key


@given(st.text(min_size=1, max_size=63))
def test_lock_key_is_a_signed_bigint_and_parts_rebuild_it(database: str) -> None:
    """Every key fits PostgreSQL's bigint, and (classid, objid) are the two 32-bit halves."""
    key = lock_key(database)
    assert -(2**63) <= key < 2**63
    classid, objid = lock_parts(key)
    assert 0 <= classid < 2**32
    assert 0 <= objid < 2**32
    rebuilt = (classid << 32) | objid
    assert rebuilt - (2**64 if rebuilt >= 2**63 else 0) == key


# --- the wait, on a fake clock ---


def _waiter(fake: FakeTime, timeout: float) -> Waiter:
    deadline = Deadline(timeout, clock=fake.clock)
    return Waiter(deadline, clock=fake.clock, sleep=fake.sleep, rng=random.Random(0))


def _held(fields: dict[str, Any] | None = None) -> Awaited:
    error = error_for(Reason.MIGRATION_LOCK_HELD, "held by pid 7")
    return Awaited(error, fields or {"holder_pid": 7})


def test_wait_ends_at_the_deadline_with_the_awaited_error() -> None:
    """Never done: the awaited error is raised at the deadline, never sleeping past it."""
    fake = FakeTime()
    with pytest.raises(PreflightError) as raised:
        _waiter(fake, 3).wait(_held, lambda *_: None)
    assert raised.value.reason is Reason.MIGRATION_LOCK_HELD
    assert raised.value.exit_code == 10
    assert fake.now == pytest.approx(3)
    assert all(0 <= s <= 0.25 * 1.2 for s in fake.slept)


def test_wait_logs_at_once_then_every_five_seconds() -> None:
    """The holder is named at the first attempt and then every 5 s, not every poll."""
    fake = FakeTime()
    reports: list[float] = []
    with pytest.raises(PreflightError):
        _waiter(fake, 12).wait(_held, lambda _a, waited: reports.append(waited))
    assert len(reports) == 3
    assert reports[0] == 0
    assert [round(r) for r in reports[1:]] == [5, 10]


def test_wait_reports_a_failing_connection_every_time() -> None:
    """A retried connection failure is logged at every attempt (preflight.migrate.retrying)."""
    fake = FakeTime()
    refused = Awaited(error_for(Reason.REFUSED, "refused"), {}, every_time=True)
    reports: list[Awaited] = []
    with pytest.raises(PreflightError):
        _waiter(fake, 1).wait(lambda: refused, lambda a, _w: reports.append(a))
    assert len(reports) == len(fake.slept) + 1


@given(st.integers(min_value=0, max_value=40))
def test_wait_returns_the_time_waited_once_done(polls: int) -> None:
    """Done after ``polls`` attempts: returns the seconds waited, within the deadline."""
    fake = FakeTime()
    left = [polls]

    def attempt() -> Awaited | None:
        if left[0] == 0:
            return None
        left[0] -= 1
        return _held()

    waited = _waiter(fake, 0).wait(attempt, lambda *_: None)
    assert waited == pytest.approx(sum(fake.slept), abs=0.001)
    assert len(fake.slept) == polls


# --- exit statuses, options, log fields ---


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (None, 0),
        (0, 0),
        (1, 1),
        (3, 3),
        (255, 255),
        (256, 1),  # 256 mod 256 would be 0: a failure reported as success
        (512, 1),
        (-1, 1),
        ("usage: bad", 1),
        (True, 1),
    ],
)
def test_follow_up_exit_status(code: object, status: int) -> None:
    """A follow-up's status is kept when 1-255; anything else that is not success is 1."""
    assert exit_status(code) == status


@given(st.integers())
def test_a_failed_follow_up_never_exits_zero(code: int) -> None:
    """Whatever non-zero status a command exits with, the runner's is non-zero too."""
    assert (exit_status(code) == 0) == (code == 0)


def test_command_failed_carries_its_status_and_a_reason() -> None:
    """The follow-up failure is an error of the model: its reason, one line, its status."""
    error = CommandFailed("failwith", 3, "exited with 3")
    assert (error.exit_code, error.reason, error.exit_class.name) == (
        3,
        Reason.FOLLOW_UP_FAILED,
        "check_failed",
    )
    assert error.one_line().startswith("check_failed (follow_up_failed): failwith: exited with 3")


@pytest.mark.parametrize(
    ("flags", "env", "expected", "problem"),
    [
        ({}, {}, 60.0, None),
        ({}, {"PREFLIGHT_TIMEOUT": "2.5"}, 2.5, None),
        ({"timeout": "7"}, {"PREFLIGHT_TIMEOUT": "2.5"}, 7.0, None),
        ({"timeout": "x"}, {}, 60.0, "--timeout"),
        ({}, {"PREFLIGHT_TIMEOUT": "-1"}, 60.0, "PREFLIGHT_TIMEOUT"),
        ({}, {"PREFLIGHT_TIMEOUT": "inf"}, 60.0, "PREFLIGHT_TIMEOUT"),
    ],
)
def test_timeout_uses_the_checks_spec_and_parser(
    flags: dict[str, str], env: dict[str, str], expected: float, problem: str | None
) -> None:
    """--timeout / PREFLIGHT_TIMEOUT: the flag wins, and a bad value is reported the way
    the check's parser words it, naming its source."""
    values, problems = read_options(flags, env)
    assert values["timeout"] == expected
    if problem is None:
        assert problems == []
    else:
        (found,) = problems
        assert found.variable == problem
        with pytest.raises(ValueError, match=re.escape(found.message)):
            parse_seconds(flags.get("timeout") or env["PREFLIGHT_TIMEOUT"])


@pytest.mark.parametrize(
    ("value", "port"), [("5432", 5432), (5432, 5432), ("", None), (None, None), ("x", "x")]
)
def test_port_is_logged_as_an_integer(value: object, port: object) -> None:
    """The plan's ``port`` is an integer, as in the check's log."""
    assert _port(value) == port


def test_log_line_matches_the_checks_format() -> None:
    """The runner's JSON line: a Z timestamp, level, event, values redacted."""
    out = io.StringIO()
    writer = Writer(out, Redactor(["s3cret-password-1"]))
    writer.emit("info", "preflight.migrate.plan", port=5432, message="pw s3cret-password-1")
    record = json.loads(out.getvalue())
    assert record["timestamp"].endswith("Z")
    assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
    assert (record["level"], record["event"], record["port"]) == (
        "info",
        "preflight.migrate.plan",
        5432,
    )
    assert "s3cret-password-1" not in out.getvalue()


@pytest.mark.parametrize(
    ("libpq", "user_timeout"), [(150002, 30_000), (120000, 30_000), (110022, None), (0, None)]
)
def test_lock_connection_options(libpq: int, user_timeout: int | None) -> None:
    """The lock's connection keeps the app's options, adds keepalives, a TCP user timeout
    where libpq has one (12+), and the connect timeout clipped to the deadline."""
    options = lock_options({"sslmode": "require"}, libpq, 3)
    assert options["sslmode"] == "require"
    assert (options["keepalives"], options["keepalives_idle"], options["connect_timeout"]) == (
        1,
        10,
        3,
    )
    assert options.get("tcp_user_timeout") == user_timeout
    assert options["application_name"].startswith("preflight-migrate")
    assert lock_options({"application_name": "app"}, libpq, 3)["application_name"] == "app"


def test_holder_is_named_in_full() -> None:
    """The holder as logged: pid, application_name, client address, state, since when."""
    since = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    holder = Holder(42, "psql", "10.0.0.7", 51000, "idle in transaction", since, since)
    assert holder.fields() == {
        "holder_pid": 42,
        "holder_application_name": "psql",
        "holder_client_addr": "10.0.0.7",
        "holder_client_port": 51000,
        "holder_state": "idle in transaction",
        "holder_since": "2026-11-30T12:00:00Z",
        "holder_state_since": "2026-11-30T12:00:00Z",
    }
    text = holder.describe()
    for part in ("pid 42", "psql", "10.0.0.7:51000", "idle in transaction", "12:00:00Z"):
        assert part in text


@pytest.mark.parametrize(
    ("reason", "at", "phase_named"),
    [
        (Reason.MIGRATION_LOCK_HELD, 5.0, True),  # awaited until the deadline
        (Reason.REFUSED, 5.0, True),
        (Reason.AUTH_FAILED, 5.0, False),  # not what was awaited: said as it is
        (Reason.MIGRATION_LOCK_HELD, 1.0, False),  # before the deadline
    ],
)
def test_failure_at_the_deadline_names_the_phase(
    reason: Reason, at: float, phase_named: bool, tmp_path: Path
) -> None:
    """Past the deadline a retried reason's failure names the phase it was waiting in;
    every failure logs the phase and writes its one line to the termination log."""
    fake = FakeTime()
    out = io.StringIO()
    run_ = Run(Writer(out, Redactor()), Deadline(2, clock=fake.clock), str(tmp_path / "t"))
    run_.phase = "lock"
    fake.now = at
    with pytest.raises(Exit) as stopped:
        run_.fail(error_for(reason, "held by pid 7"))
    failed = json.loads(out.getvalue())
    assert stopped.value.code == failed["exit_code"] == REASONS[reason].exit_class.code
    assert (failed["reason"], failed["phase"]) == (reason.value, "lock")
    assert ("waiting for the migration lock" in failed["message"]) is phase_named
    assert (tmp_path / "t").read_text().startswith(f"{failed['class']} ({reason.value}): held")


class _Sqlstate(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.sqlstate = code


def _django_wrapped(code: str) -> Exception:
    outer = Exception("OperationalError")
    outer.__cause__ = _Sqlstate(code)
    return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_Sqlstate("55P03"), True),
        (_django_wrapped("55P03"), True),
        (_django_wrapped("57014"), False),  # a statement timeout is not a lock timeout
        (ValueError("55P03"), False),
    ],
)
def test_lock_not_available_is_recognised_through_djangos_wrapper(
    exc: Exception, expected: bool
) -> None:
    """Only SQLSTATE 55P03, bare or as the cause of Django's error, is a lock timeout."""
    assert lock_not_available(exc) is expected


@pytest.mark.parametrize("fails", [0, 1, 4, 5, 9])
def test_lock_timeouts_are_retried_a_bounded_number_of_times(
    fails: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that times out on a table lock is tried at most 5 times, pausing 0.25-4 s
    between tries, with the system checks only the first time; then it names the blocker."""
    calls: list[bool] = []

    def migrate(alias: str, *, skip_checks: bool, before_each: Any, lock_timeout: float) -> None:
        calls.append(skip_checks)
        if len(calls) <= fails:
            raise LockTimedOut("ledger.0004_marker_note")

    monkeypatch.setattr(_steps, "migrate", migrate)
    fake = FakeTime()
    reports: list[tuple[str, int, float, list[str]]] = []

    def attempt() -> None:
        _steps.migrate_with_retries(
            "default",
            skip_checks=False,
            before_each=lambda _name: None,
            lock_timeout=0.3,
            blockers=lambda: ["pid 7 (psql, in a transaction since 2026-11-30T12:00:00Z)"],
            report=lambda *a: reports.append(a),
            sleep=fake.sleep,
            rng=random.Random(0),
        )

    if fails >= _steps.LOCK_TIMEOUT_ATTEMPTS:
        with pytest.raises(PreflightError) as raised:
            attempt()
        assert raised.value.reason is Reason.MIGRATION_LOCK_TIMEOUT
        assert "pid 7 (psql" in raised.value.message
        assert len(calls) == _steps.LOCK_TIMEOUT_ATTEMPTS
    else:
        attempt()
        assert len(calls) == fails + 1
    assert calls[0] is False
    assert all(calls[1:])
    assert [r[1] for r in reports] == list(range(1, len(reports) + 1))
    assert all(0.25 <= s <= 4 for s in fake.slept)
    assert fake.slept == [r[2] for r in reports]
