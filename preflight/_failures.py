"""Connection failures -> reasons -> failure classes, with a hint for each.

psycopg's connection failures carry no SQLSTATE, so they are recognised by the
libpq message (taken from ``e.pgconn`` where there is one).  Every message
pattern lives in ``PATTERNS``; the integration tests feed it the messages real
servers produce.  Pure: it never imports psycopg.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._errors import (
    AuthFailed,
    DatabaseMissing,
    PreflightError,
    TlsFailed,
    Unreachable,
)


class Reason(NamedTuple):
    """A reason: its failure class and the advice for a person."""

    name: str
    error: type[PreflightError]
    hint: str


_CHECK_NETWORK = (
    "check that SQL_HOST and SQL_PORT are right, that the database service is running, "
    "and that network policies or security groups let this pod reach it"
)

REASONS: dict[str, Reason] = {
    r.name: r
    for r in (
        Reason(
            "dns",
            Unreachable,
            "check the host name and that its DNS record or Kubernetes Service exists",
        ),
        Reason("refused", Unreachable, f"nothing accepted the connection: {_CHECK_NETWORK}"),
        Reason("timeout", Unreachable, f"nothing answered in time: {_CHECK_NETWORK}"),
        Reason("network", Unreachable, f"no route to the server: {_CHECK_NETWORK}"),
        Reason(
            "starting_up",
            Unreachable,
            "the server is starting, shutting down or recovering; this heals by itself, "
            "if it lasts read the server's log",
        ),
        Reason(
            "too_many_clients",
            Unreachable,
            "all connection slots are taken: raise max_connections, put a pooler in front, "
            "or find the client that holds the connections",
        ),
        Reason(
            "read_only",
            Unreachable,
            "the -rw service reached a read-only standby (a failover in progress?): "
            "check the Cluster's status and that the -rw service points at the primary",
        ),
        Reason(
            "connection_lost",
            Unreachable,
            "the server closed the connection during start-up: read the server's log; "
            "a proxy or pooler in front of it may be failing",
        ),
        Reason("unknown", Unreachable, "read the message; the server's log may say more"),
        Reason(
            "auth_failed",
            AuthFailed,
            "check SQL_USER, SQL_PASSWORD (or the secret behind them) and SQL_DATABASE, "
            "that the role may log in to that database, and pg_hba.conf",
        ),
        Reason(
            "database_missing",
            DatabaseMissing,
            "check SQL_DATABASE, or create the database",
        ),
        Reason(
            "tls_required",
            TlsFailed,
            "the server accepts only encrypted connections (for example RDS with "
            "rds.force_ssl=1): set SQL_SSL_MODE=require, or verify-full with "
            "SQL_SSL_ROOT_CERT; if it does take plain connections, pg_hba.conf has no "
            "entry for this user and address",
        ),
        Reason(
            "tls_unavailable",
            TlsFailed,
            "the server does not offer TLS but the sslmode requires it: enable ssl on "
            "the server, or set SQL_SSL_MODE=disable for a database on a private network",
        ),
        Reason(
            "tls_untrusted",
            TlsFailed,
            "the server's certificate is not signed by a CA in SQL_SSL_ROOT_CERT: mount "
            "the right CA bundle (RDS: the regional or global bundle; RDS Proxy: 'system')",
        ),
        Reason(
            "tls_hostname",
            TlsFailed,
            "the certificate does not name SQL_HOST: connect with a name the certificate "
            "lists, or use SQL_SSL_MODE=verify-ca",
        ),
        Reason(
            "tls_ca_missing",
            TlsFailed,
            "the CA bundle in SQL_SSL_ROOT_CERT cannot be read: check the mount and path",
        ),
        Reason(
            "tls_failed",
            TlsFailed,
            "the TLS handshake failed: check SQL_SSL_MODE and the certificates",
        ),
    )
}

# (pattern, reason): first match wins, searched in the lower-cased message.
# Plain strings: the re module compiles them on first use, not at import.
PATTERNS: tuple[tuple[str, str], ...] = tuple(
    (pattern, reason)
    for pattern, reason in (
        (r"failed to resolve host|could not translate host name", "dns"),
        (r"timeout expired", "timeout"),
        (r"connection refused", "refused"),
        (r'on socket ".*" failed: no such file or directory', "refused"),
        (r"no route to host|network is unreachable|host is unreachable", "network"),
        (
            r"the database system is (starting up|shutting down|in recovery mode|"
            r"not yet accepting connections|not accepting connections)",
            "starting_up",
        ),
        (r"too many clients|remaining connection slots are reserved", "too_many_clients"),
        (r"session is read-only|server is in hot standby mode", "read_only"),
        (r'database ".*" does not exist', "database_missing"),
        (r"no pg_hba\.conf entry for .*no encryption", "tls_required"),
        (r"server does not support ssl", "tls_unavailable"),
        (
            r"root certificate file .*(does not exist|could not)|could not read root",
            "tls_ca_missing",
        ),
        (r"could not get home directory to locate root certificate", "tls_ca_missing"),
        (r"does not match host name", "tls_hostname"),
        (r"certificate verify failed", "tls_untrusted"),
        (
            r"password authentication failed|authentication failed for user|"
            r'role ".*" does not exist|no password supplied|no pg_hba\.conf entry|'
            r"pg_hba\.conf rejects|permission denied for database|not permitted to log in",
            "auth_failed",
        ),
        (r"server closed the connection unexpectedly|ssl syscall error: eof", "connection_lost"),
        (r"\bssl\b|\btls\b|certificate", "tls_failed"),
    )
)

# SQLSTATEs for failures that happen after the connection exists.
SQLSTATES: dict[str, str] = {
    "57P03": "starting_up",  # cannot_connect_now
    "53300": "too_many_clients",
    "28P01": "auth_failed",
    "28000": "auth_failed",
    "3D000": "database_missing",
    "25006": "read_only",
}


def reason_for_message(message: str) -> str:
    """The reason for a libpq/psycopg message (``unknown`` when nothing matches)."""
    text = message.lower()
    for pattern, reason in PATTERNS:
        if re.search(pattern, text):
            return reason
    return "unknown"


def _first_error(message: str) -> str:
    """The most recent failure of a multi-attempt message (psycopg puts it first)."""
    return message.split("\nMultiple connection attempts failed", 1)[0]


def describe(message: str) -> str:
    """A one-line, human form of a libpq message."""
    text = _first_error(message).strip()
    text = text.removeprefix("connection failed: ")
    return " ".join(text.split())


def error_for(reason: str, message: str, *, host: str = "") -> PreflightError:
    """Build the exception for ``reason`` with the right hint."""
    spec = REASONS[reason]
    hint = spec.hint
    if reason == "dns" and host and "." not in host.strip(".") and not host.startswith("/"):
        hint = (
            f"{host} is a short name, which resolves only inside the same Kubernetes "
            "namespace (or docker compose project): use name.namespace for a Service in "
            "another namespace, and check that the Service exists"
        )
    return spec.error(message, reason=reason, hint=hint)


def classify_failure(
    exc: BaseException, *, host: str = "", raw_message: str | None = None
) -> PreflightError:
    """Map an exception raised while connecting or querying to a failure class.

    ``raw_message`` is the libpq error text from ``exc.pgconn`` when there is one.
    Timeouts are recognised by their type name so that this module need not
    import psycopg.
    """
    message = raw_message or str(exc)
    type_names = {cls.__name__ for cls in type(exc).__mro__}
    sqlstate = getattr(exc, "sqlstate", None)
    if "ConnectionTimeout" in type_names:
        reason = "timeout"
    elif isinstance(sqlstate, str) and sqlstate in SQLSTATES:
        reason = SQLSTATES[sqlstate]
    else:
        reason = reason_for_message(_first_error(message))
    return error_for(reason, describe(message) or type(exc).__name__, host=host)
