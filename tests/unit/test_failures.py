"""Failure classification: one row per message pattern and per SQLSTATE."""

from __future__ import annotations

import re

import pytest

from preflight import Reason, _exit_codes
from preflight._exit_codes import REASONS
from preflight._failures import PATTERNS, SQLSTATES, classify, describe, reason_for_message

# Messages as libpq and psycopg write them (the integration tests check the
# same classification against messages real servers send).
MESSAGES = [
    ("failed to resolve host 'db-x': [Errno -2] Name or service not known", "dns"),
    ('could not translate host name "db-x" to address: Name or service not known', "dns"),
    ("connection timeout expired", "timeout"),
    ('connection to server at "127.0.0.1", port 5999 failed: Connection refused', "refused"),
    (
        'connection to server on socket "/run/.s.PGSQL.5432" failed: No such file or directory',
        "refused",
    ),
    ('connection to server at "10.1.1.1", port 5432 failed: No route to host', "network"),
    ("FATAL:  the database system is starting up", "starting_up"),
    ("FATAL:  the database system is shutting down", "starting_up"),
    ("FATAL:  the database system is not yet accepting connections", "starting_up"),
    ("FATAL:  sorry, too many clients already", "too_many_clients"),
    (
        "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
        "too_many_clients",
    ),
    ('connection to server at "127.0.0.1", port 5432 failed: session is read-only', "read_only"),
    ('FATAL:  database "nope" does not exist', "database_missing"),
    (
        'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "u", database "d", no encryption',
        "pg_hba_rejected",
    ),
    ("server does not support SSL, but SSL was required", "tls_unavailable"),
    ('root certificate file "/ca.pem" does not exist', "tls_ca_missing"),
    ("could not get home directory to locate root certificate file", "tls_ca_missing"),
    ('server certificate for "db.example" does not match host name "other"', "tls_hostname"),
    ("SSL error: certificate verify failed", "tls_untrusted"),
    ('FATAL:  password authentication failed for user "balancer"', "auth_failed"),
    ('FATAL:  role "ghost" does not exist', "auth_failed"),
    ("fe_sendauth: no password supplied", "auth_failed"),
    (
        'FATAL:  no pg_hba.conf entry for host "1.2.3.4", user "u", database "d", SSL encryption',
        "pg_hba_rejected",
    ),
    ('FATAL:  permission denied for database "d"', "auth_failed"),
    ("server closed the connection unexpectedly", "connection_lost"),
    ("SSL error: unexpected eof while reading", "connection_lost"),
    ("SSL SYSCALL error: EOF detected", "connection_lost"),
    ("could not receive data from server: Connection reset by peer", "connection_lost"),
    ("FATAL:  terminating connection due to administrator command", "connection_lost"),
    ("SSL error: tlsv1 alert unknown ca", "tls_untrusted"),
    ("SSL error: wrong version number", "tls_failed"),
    ('definition of service "nosuch" not found', "libpq_option"),
    ('invalid connection option "nosuch"', "libpq_option"),
    ('invalid target_session_attrs value: "x"', "libpq_option"),
    ('FATAL:  unrecognized configuration parameter "nosuch_param"', "libpq_option"),
    ("server is not in hot standby mode", "libpq_option"),
    (
        'weak sslmode "prefer" may not be used with sslnegotiation=direct (use "require")',
        "libpq_option",
    ),
    ("server is in hot standby mode", "read_only"),
    (
        'authentication method requirement "md5" failed: server requested SASL authentication',
        "auth_method",
    ),
    ('FATAL:  database "closed" is not currently accepting connections', "database_closed"),
    ("ERROR:  pgbouncer cannot connect to server", "pooler_waiting"),
    (
        "FATAL:  server login has been failing, cached error: connect failed (server_login_retry)",
        "pooler_waiting",
    ),
    ("ERROR:  no more connections allowed (max_client_conn)", "too_many_clients"),
    ("FATAL:  SASL authentication failed", "auth_failed"),
    ("query_wait_timeout", "pooler_waiting"),
    ("ERROR:  no such database: nope", "database_missing"),
    ("DNS lookup of db did not answer within 3.0 s", "dns"),
    ("ERROR:  canceling statement due to statement timeout", "timeout"),
    ("something nobody has seen before", "unknown"),
]


@pytest.mark.parametrize(("message", "reason"), MESSAGES)
def test_message_to_reason(message: str, reason: str) -> None:
    """Each known message maps to its reason."""
    assert reason_for_message(message) == reason


def test_every_pattern_has_a_message() -> None:
    """No pattern in the table goes untested."""
    for pattern, _reason in PATTERNS:
        assert any(re.search(pattern, m.lower()) for m, _ in MESSAGES), pattern


def test_every_reason_has_a_hint() -> None:
    """Each reason in the table has advice for a person."""
    assert set(REASONS) == set(Reason)
    assert all(info.hint for info in REASONS.values())


@pytest.mark.parametrize(
    ("reason", "exit_code", "retried"),
    [
        ("dns", 10, True),
        ("refused", 10, True),
        ("timeout", 10, True),
        ("starting_up", 10, True),
        ("too_many_clients", 10, True),
        ("pooler_waiting", 10, True),
        ("read_only", 10, True),
        ("connection_lost", 10, True),
        ("unknown", 10, True),
        ("auth_failed", 4, False),
        ("pg_hba_rejected", 4, False),
        ("auth_method", 4, False),
        ("database_missing", 5, False),
        ("database_closed", 5, False),
        ("tls_unavailable", 6, False),
        ("tls_untrusted", 6, False),
        ("tls_hostname", 6, False),
        ("tls_ca_missing", 6, False),
        ("tls_failed", 6, False),
        ("extension_missing", 7, False),
        ("libpq_option", 3, False),
        ("config_invalid", 3, False),
        ("usage", 2, False),
    ],
)
def test_reason_to_exit_code(reason: str, exit_code: int, retried: bool) -> None:
    """Every reason maps to the exit code the exit-code table gives its class."""
    info = REASONS[Reason(reason)]
    assert (info.exit_class.code, info.retried) == (exit_code, retried)


@pytest.mark.parametrize(("sqlstate", "reason"), sorted(SQLSTATES.items()))
def test_sqlstate_wins_when_present(sqlstate: str, reason: Reason) -> None:
    """After the connection exists, the SQLSTATE decides."""
    assert classify("server said no", sqlstate=sqlstate)[0] is reason


def test_timeout_flag_wins() -> None:
    """psycopg's own connect timeout is a timeout whatever the message."""
    assert classify("", timed_out=True) == (Reason.TIMEOUT, "connection timeout expired")


def test_multi_attempt_message_uses_the_latest_failure() -> None:
    """psycopg lists the latest failure first; that one is classified."""
    message = (
        'connection failed: FATAL:  password authentication failed for user "u"\n'
        "Multiple connection attempts failed. All failures were:\n"
        "- host: 'localhost', port: '5432', hostaddr: '::1': Connection refused\n"
    )
    reason, text = classify(message)
    assert reason is Reason.AUTH_FAILED
    assert "\n" not in text


# sslmode=prefer (or allow) against a TLS-only server: libpq tries the login
# with TLS and then without, and reports both failures.
_TLS_ATTEMPT = 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  {}\n'
_PLAIN_REJECTED = _TLS_ATTEMPT.format(
    'no pg_hba.conf entry for host "127.0.0.1", user "u", database "d", no encryption'
)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ('password authentication failed for user "u"', Reason.AUTH_FAILED),
        ('database "d" does not exist', Reason.DATABASE_MISSING),
        ('role "u" does not exist', Reason.AUTH_FAILED),
        ("sorry, too many clients already", Reason.TOO_MANY_CLIENTS),
    ],
)
def test_the_unencrypted_retry_rejection_does_not_hide_the_real_failure(
    first: str, reason: Reason
) -> None:
    """When the TLS attempt failed for a reason and the unencrypted retry was refused by
    pg_hba.conf, the TLS attempt's reason is the one classified; both stay in the text."""
    for message in (
        _TLS_ATTEMPT.format(first) + _PLAIN_REJECTED,
        _PLAIN_REJECTED + _TLS_ATTEMPT.format(first),
    ):
        got, text = classify(message)
        assert got is reason
        assert first.split()[0] in text
        assert "no encryption" in text


def test_an_unencrypted_rejection_alone_is_still_pg_hba() -> None:
    """With sslmode=disable only the unencrypted attempt is made: pg_hba_rejected."""
    assert classify(_PLAIN_REJECTED)[0] is Reason.PG_HBA_REJECTED


def test_a_message_repeated_by_libpq_is_said_once() -> None:
    """libpq may repeat a server's FATAL line; the one-line message says it once."""
    line = 'FATAL:  unrecognized configuration parameter "nosuch_param"'
    assert (
        describe(f"{line}\n{line}\n")
        == 'FATAL: unrecognized configuration parameter "nosuch_param"'
    )


def test_continuation_lines_read_as_sentences() -> None:
    """libpq's two-line refusal reads as two sentences on one line."""
    message = (
        'connection to server at "127.0.0.1", port 5999 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
    )
    assert describe(message).endswith(
        "Connection refused. Is the server running on that host and accepting TCP/IP connections?"
    )


def test_exit_codes_are_unique() -> None:
    """No two classes share an exit code."""
    codes = [c.code for c in _exit_codes.CLASSES]
    assert len(codes) == len(set(codes))
