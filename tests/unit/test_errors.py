"""The error model: the failure class and exit code are derived from the reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight import _errors
from preflight._errors import PreflightError, error_for
from preflight._exit_codes import REASONS, Reason
from preflight._failures import driver_error

SUBCLASSES = [
    cls
    for cls in vars(_errors).values()
    if isinstance(cls, type) and issubclass(cls, PreflightError)
]


@pytest.mark.parametrize("reason", list(Reason))
def test_root_error_takes_the_reasons_class(reason: Reason) -> None:
    """PreflightError(reason=R) reports R's failure class and exit code, never another."""
    error = PreflightError("m", reason=reason)
    assert error.exit_class is REASONS[reason].exit_class
    assert error.exit_code == REASONS[reason].exit_class.code
    assert error.one_line().startswith(f"{REASONS[reason].exit_class.name} ({reason}): m")


def test_auth_failed_reason_is_auth_failed() -> None:
    """The case issue 15 found: an auth reason on the root class is auth_failed (4)."""
    error = PreflightError("x", reason=Reason.AUTH_FAILED)
    assert (error.exit_class.name, error.exit_code) == ("auth_failed", 4)


@given(st.sampled_from([c for c in SUBCLASSES if c.kind is not None]), st.sampled_from(Reason))
def test_a_subclass_refuses_a_reason_of_another_class(
    cls: type[PreflightError], reason: Reason
) -> None:
    """A subclass accepts exactly the reasons of its class; the rest raise TypeError."""
    if cls is _errors.ConfigError:
        return  # built from problems; covered through error_for below
    if REASONS[reason].exit_class is cls.kind:
        assert cls("m", reason=reason).exit_class is cls.kind
    else:
        with pytest.raises(TypeError, match="use error_for"):
            cls("m", reason=reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_error_for_picks_the_subclass_of_the_reasons_class(reason: Reason) -> None:
    """error_for's subclass names the same class the reason does."""
    error = error_for(reason, "m")
    assert type(error).kind is REASONS[reason].exit_class
    assert error.exit_class is type(error).kind


class _PgConn:
    def __init__(self, message: str) -> None:
        self.error_message = message.encode()


class _Psycopg3Error(Exception):
    """Shaped as psycopg 3's: the libpq message on ``pgconn``, ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__("connection failed")
        self.pgconn = _PgConn(message)
        self.sqlstate = sqlstate


class _Psycopg2Error(Exception):
    """Shaped as psycopg2's: the message in ``str()``, ``pgcode``."""

    def __init__(self, message: str, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


class ConnectionTimeout(Exception):
    """Named as psycopg 3's connect timeout."""


def _wrapped(cause: Exception) -> Exception:
    """As Django raises it: its own OperationalError, the driver's error as the cause."""
    outer = Exception("django.db.utils.OperationalError")
    outer.__cause__ = cause
    return outer


REFUSED = (
    'connection to server at "127.0.0.1", port 5 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)
NO_HBA = 'no pg_hba.conf entry for host "10.0.0.1", user "app", database "app", no encryption'


@pytest.mark.parametrize(
    ("message", "sqlstate", "reason"),
    [
        (REFUSED, None, Reason.REFUSED),
        ('password authentication failed for user "app"', "28P01", Reason.AUTH_FAILED),
        (NO_HBA, None, Reason.PG_HBA_REJECTED),
        ('database "x" does not exist', "3D000", Reason.DATABASE_MISSING),
        ("terminating connection due to administrator command", "57P01", Reason.CONNECTION_LOST),
    ],
)
def test_both_drivers_classify_alike_bare_or_through_django(
    message: str, sqlstate: str | None, reason: Reason
) -> None:
    """The check and the runner see one failure the same: psycopg 3 or psycopg2, bare or
    wrapped by Django, the same reason, message and hint."""
    errors = [
        driver_error(exc)
        for exc in (
            _Psycopg3Error(message, sqlstate),
            _Psycopg2Error(message, sqlstate),
            _wrapped(_Psycopg3Error(message, sqlstate)),
            _wrapped(_Psycopg2Error(message, sqlstate)),
        )
    ]
    assert {(e.reason, e.message, e.hint, e.exit_code) for e in errors} == {
        (reason, errors[0].message, errors[0].hint, REASONS[reason].exit_class.code)
    }
    assert "\n" not in errors[0].message


def test_no_encryption_gets_its_own_hint() -> None:
    """pg_hba.conf rejecting an unencrypted connection says to use TLS, for both commands."""
    assert "SQL_SSL_MODE=prefer" in driver_error(_Psycopg2Error(NO_HBA)).hint


def test_a_connect_timeout_is_a_timeout() -> None:
    """psycopg 3's ConnectionTimeout is reason timeout, whatever its message."""
    assert driver_error(ConnectionTimeout("whatever")).reason is Reason.TIMEOUT
