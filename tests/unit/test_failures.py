"""Failure classification: one row per message pattern and per SQLSTATE."""

from __future__ import annotations

import re

import pytest

from preflight import _exit_codes
from preflight._failures import PATTERNS, REASONS, SQLSTATES, classify_failure, reason_for_message

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
        "tls_required",
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
        "auth_failed",
    ),
    ('FATAL:  permission denied for database "d"', "auth_failed"),
    ("server closed the connection unexpectedly", "connection_lost"),
    ("SSL error: unexpected eof while reading", "tls_failed"),
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


def test_every_reason_is_reachable_and_has_a_hint() -> None:
    """Each reason has a hint, and every reason a pattern gives is defined."""
    assert all(r.hint for r in REASONS.values())
    assert {reason for _, reason in PATTERNS} | set(SQLSTATES.values()) <= REASONS.keys()


@pytest.mark.parametrize(
    ("reason", "exit_code"),
    [
        ("dns", 10),
        ("refused", 10),
        ("timeout", 10),
        ("starting_up", 10),
        ("too_many_clients", 10),
        ("read_only", 10),
        ("auth_failed", 4),
        ("database_missing", 5),
        ("tls_required", 6),
        ("tls_unavailable", 6),
        ("tls_untrusted", 6),
        ("tls_hostname", 6),
        ("tls_ca_missing", 6),
    ],
)
def test_reason_to_exit_code(reason: str, exit_code: int) -> None:
    """Every reason maps to the exit code the README's table gives its class."""
    assert REASONS[reason].error("m", reason=reason).exit_code == exit_code


class _FakeSqlError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("server said no")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("sqlstate", "reason"), sorted(SQLSTATES.items()))
def test_sqlstate_wins_when_present(sqlstate: str, reason: str) -> None:
    """After the connection exists, the SQLSTATE decides."""
    assert classify_failure(_FakeSqlError(sqlstate)).reason == reason


def test_multi_attempt_message_uses_the_latest_failure() -> None:
    """psycopg lists the latest failure first; that one is classified."""
    message = (
        'connection failed: FATAL:  password authentication failed for user "u"\n'
        "Multiple connection attempts failed. All failures were:\n"
        "- host: 'localhost', port: '5432', hostaddr: '::1': Connection refused\n"
    )
    failure = classify_failure(RuntimeError(message))
    assert failure.reason == "auth_failed"
    assert "\n" not in failure.message


def test_short_name_dns_hint_mentions_namespace() -> None:
    """A DNS failure on a short name says short names resolve only in the namespace."""
    failure = classify_failure(RuntimeError("failed to resolve host 'db-rw'"), host="db-rw")
    assert "same Kubernetes namespace" in failure.hint


def test_exit_codes_are_unique() -> None:
    """No two classes share an exit code."""
    codes = [c.code for c in _exit_codes.TABLE]
    assert len(codes) == len(set(codes))
