"""Connection failures -> reasons.

psycopg's connection failures carry no SQLSTATE, so they are recognised by the
libpq message (from ``e.pgconn`` where there is one); failures after login are
recognised by SQLSTATE first.  Every pattern lives in ``PATTERNS``; the
integration tests feed it the messages real servers, PgBouncer and libpq
produce.  Pure: it never imports psycopg.
"""

from __future__ import annotations

import re

from ._errors import PreflightError, error_for
from ._exit_codes import Reason

# 57P03 answers that last as long as the server needs: recovery (the redo after a
# crash, a standby not yet consistent), a standby with hot_standby off, a shutdown.
# "The database system is starting up" is a start's first moments: tens of ms.
# Both are Reason.STARTING_UP; the retry schedule tells them apart (lasting()).
_LASTING_STATES = (
    r"shutting down|in recovery mode|not yet accepting connections|not accepting connections"
)
_LASTING = rf"the database system is ({_LASTING_STATES})"

# (pattern, reason): first match wins, searched in the lower-cased message.
# Plain strings: the re module compiles them on first use, not at import.
PATTERNS: tuple[tuple[str, Reason], ...] = (
    # libpq options no waiting can fix (before "dns", "timeout", "ssl" and the like).
    (
        r"could not parse network address|invalid command-line argument|"
        r'invalid "?[\w ]+"? value|invalid connection option|'
        r"definition of service .* not found|service file .* not found|"
        r"invalid value for parameter|"
        r"unrecognized configuration parameter|may not be used with sslnegotiation|"
        r"server is not in hot standby mode|invalid integer value|invalid port number|"
        r"unsupported startup parameter|could not match .* to a valid",
        Reason.LIBPQ_OPTION,
    ),
    (
        r"failed to resolve host|could not translate host name|name or service not known|"
        r"temporary failure in name resolution|dns lookup",
        Reason.DNS,
    ),
    (r"timeout expired|canceling statement due to statement timeout", Reason.TIMEOUT),
    (r"connection refused", Reason.REFUSED),
    (r'on socket ".*" failed: no such file or directory', Reason.REFUSED),
    (r"no route to host|network is unreachable|host is unreachable", Reason.NETWORK),
    (rf"the database system is (starting up|{_LASTING_STATES})", Reason.STARTING_UP),
    (
        r"too many clients|remaining connection slots are reserved|"
        r"no more connections allowed|too many connections for",
        Reason.TOO_MANY_CLIENTS,
    ),
    (
        r"server login has been failing|pgbouncer cannot connect to server|"
        r"query_wait_timeout|server_connect_timeout|no server available|"
        r"database .* is paused|pooler error",
        Reason.POOLER_WAITING,
    ),
    (r"session is read-only|server is in hot standby mode", Reason.READ_ONLY),
    (r'database ".*" is not currently accepting connections', Reason.DATABASE_CLOSED),
    (r'database ".*" does not exist|no such database', Reason.DATABASE_MISSING),
    (r"no pg_hba\.conf entry|pg_hba\.conf rejects", Reason.PG_HBA_REJECTED),
    (
        r"authentication method requirement|channel binding required|"
        r"server requested .* authentication|channel binding is required",
        Reason.AUTH_METHOD,
    ),
    (r"server does not support ssl", Reason.TLS_UNAVAILABLE),
    (
        r"root certificate file .*(does not exist|could not)|could not read root|"
        r"could not load root|could not get home directory to locate root",
        Reason.TLS_CA_MISSING,
    ),
    (r"does not match host name|no san|host name .* not match", Reason.TLS_HOSTNAME),
    (r"certificate verify failed|unknown ca|self[- ]signed certificate", Reason.TLS_UNTRUSTED),
    (
        r"password authentication failed|authentication failed for user|"
        r"sasl authentication failed|"
        r'role ".*" does not exist|no password supplied|permission denied for database|'
        r"not permitted to log in|password authentication failed",
        Reason.AUTH_FAILED,
    ),
    # A connection cut at any stage, TLS handshake included, can heal.
    (
        r"server closed the connection unexpectedly|ssl syscall error|unexpected eof|"
        r"eof detected|connection reset|broken pipe|lost synchronization|"
        r"consuming input failed|server conn crashed|terminating connection due to|"
        r"connection to server was lost|could not receive data|could not send data|"
        r"bad length in|unexpected message",
        Reason.CONNECTION_LOST,
    ),
    (r"\bssl\b|\btls\b|certificate", Reason.TLS_FAILED),
)

# SQLSTATEs for failures that happen after the connection exists.
SQLSTATES: dict[str, Reason] = {
    "57P03": Reason.STARTING_UP,  # cannot_connect_now
    "57P01": Reason.CONNECTION_LOST,  # admin_shutdown
    "57P02": Reason.CONNECTION_LOST,  # crash_shutdown
    "53300": Reason.TOO_MANY_CLIENTS,
    "28P01": Reason.AUTH_FAILED,
    "3D000": Reason.DATABASE_MISSING,
    "25006": Reason.READ_ONLY,
    "57014": Reason.TIMEOUT,  # query_canceled: the statement timeout
    "55P03": Reason.TIMEOUT,  # lock_not_available
    "42704": Reason.LIBPQ_OPTION,  # unrecognized configuration parameter
    "22023": Reason.LIBPQ_OPTION,  # invalid_parameter_value
}


def reason_for_message(message: str) -> Reason:
    """The reason for a libpq/psycopg/server message (``unknown`` when nothing matches)."""
    text = message.lower()
    for pattern, reason in PATTERNS:
        if re.search(pattern, text):
            return reason
    return Reason.UNKNOWN


def describe(message: str) -> str:
    """A one-line, human form of a libpq message: the latest failure, said once."""
    text = message.split("\nMultiple connection attempts failed", 1)[0]
    lines: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split()).removeprefix("connection failed: ")
        if line and line not in lines:
            lines.append(line)
    # libpq continues a message on a new line without punctuation ("...refused
    # / Is the server running..."): end each line as a sentence before joining.
    return " ".join(
        line if i == len(lines) - 1 or line[-1] in ".:;?!" else line + "."
        for i, line in enumerate(lines)
    )


# sslmode=prefer (or allow): libpq retries a failed login the other way, with TLS
# and without, and reports both attempts.  Against a TLS-only server the
# unencrypted attempt is always refused by pg_hba.conf ("no encryption"); that
# refusal belongs to the retry, and the other attempt's failure is the real one.
_UNENCRYPTED_REJECTED = re.compile(r"no pg_hba\.conf entry .*no encryption", re.IGNORECASE)


def _without_retry_rejection(message: str) -> str:
    """``message`` less the unencrypted retry's refusal, when another failure is there."""
    kept = [line for line in message.splitlines() if not _UNENCRYPTED_REJECTED.search(line)]
    return "\n".join(kept) if describe("\n".join(kept)) else message


def lasting(message: str) -> bool:
    """Whether a "starting up" answer (57P03) names a state that lasts as long as the
    server needs (:data:`_LASTING`) rather than a start's first moments."""
    return re.search(_LASTING, message.lower()) is not None


def classify(
    message: str, *, sqlstate: str | None = None, timed_out: bool = False
) -> tuple[Reason, str]:
    """The reason and the one-line message for a failure while connecting or querying."""
    described = describe(message)
    if timed_out:
        return Reason.TIMEOUT, described or "connection timeout expired"
    if sqlstate is not None and sqlstate in SQLSTATES:
        return SQLSTATES[sqlstate], described
    if sqlstate == "55000" and "not currently accepting connections" in described:
        return Reason.DATABASE_CLOSED, described
    return reason_for_message(describe(_without_retry_rejection(message))), described


_NO_ENCRYPTION_HINT = (
    "pg_hba.conf rejects this connection without encryption: the server takes only "
    "TLS (hostssl, rds.force_ssl=1), so use SQL_SSL_MODE=prefer or stronger "
    "instead of disable, or add a host rule"
)


def driver_error(exc: BaseException) -> PreflightError:
    """A psycopg 3 or psycopg2 error (bare, or wrapped by Django) as the preflight's error.

    Duck-typed, so it imports neither driver: the check and the migrate runner
    classify the same failure to the same reason, message and hint.
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    pgconn = getattr(cause, "pgconn", None)
    raw = getattr(pgconn, "error_message", None) if pgconn is not None else None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) and raw else str(cause)
    # psycopg 3 calls it sqlstate, psycopg2 pgcode.
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    timed_out = "ConnectionTimeout" in {k.__name__ for k in type(cause).__mro__}
    reason, message = classify(
        text, sqlstate=sqlstate if isinstance(sqlstate, str) else None, timed_out=timed_out
    )
    hint = None
    if reason is Reason.PG_HBA_REJECTED and "no encryption" in message:
        hint = _NO_ENCRYPTION_HINT
    return error_for(reason, message or type(cause).__name__, hint=hint)
