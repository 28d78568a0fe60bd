"""Where failures become exit codes: the one table of classes and reasons.

Every failure the preflight reports has a :class:`Reason`; each reason belongs
to one :class:`ExitClass`, which fixes the exit code and whether waiting can
heal it.  The ``--help`` epilog, the README's exit-code table and the troubleshooting
table (docs/troubleshooting.md) are generated from ``CLASSES`` and ``REASONS`` (a
test keeps the docs in step), so there is no second list to forget.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class ExitClass(NamedTuple):
    """One row of the exit-code table."""

    name: str
    code: int
    cause: str


READY = ExitClass("ready", 0, "the database answered a query (also: engine is sqlite)")
INTERNAL_ERROR = ExitClass(
    "internal_error", 1, "a bug in the preflight: the log names the exception type; report it"
)
USAGE = ExitClass("usage", 2, "bad command-line flags, or the `[check]` extra is not installed")
CONFIG_INVALID = ExitClass(
    "config_invalid",
    3,
    "invalid or missing environment, or a libpq option or environment variable that no "
    "waiting can fix",
)
AUTH_FAILED = ExitClass(
    "auth_failed",
    4,
    "wrong password, role missing, `pg_hba.conf` rejects the user or the encryption, "
    "no CONNECT privilege",
)
DATABASE_MISSING = ExitClass(
    "database_missing", 5, "the database does not exist, or does not accept connections"
)
TLS_FAILED = ExitClass(
    "tls_failed",
    6,
    "server has no TLS but sslmode requires it, certificate not trusted, host name "
    "mismatch, CA file missing",
)
CHECK_FAILED = ExitClass(
    "check_failed", 7, "a required extension is missing, or a migration failed"
)
POOLER = ExitClass(
    "pooler",
    8,
    "the migrate runner reached a connection pooler (a CloudNativePG Pooler by name, or a "
    "server connection that already carries its lock): it refuses before taking any lock",
)
UNREACHABLE = ExitClass(
    "unreachable", 10, "the deadline passed while the database could not be reached or used yet"
)
# SIGINT and SIGTERM: 128 + the signal number, as shells report it.
INTERRUPTED = ExitClass("interrupted", 130, "SIGINT (130) / SIGTERM (143)")

CLASSES: tuple[ExitClass, ...] = (
    READY,
    INTERNAL_ERROR,
    USAGE,
    CONFIG_INVALID,
    AUTH_FAILED,
    DATABASE_MISSING,
    TLS_FAILED,
    CHECK_FAILED,
    POOLER,
    UNREACHABLE,
    INTERRUPTED,
)


def interrupted_code(signum: int) -> int:
    """The exit code for a stop by signal ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class Reason(enum.StrEnum):
    """Why a run failed: the ``reason`` field of ``preflight.failed``."""

    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NETWORK = "network"
    STARTING_UP = "starting_up"
    TOO_MANY_CLIENTS = "too_many_clients"
    POOLER_WAITING = "pooler_waiting"
    READ_ONLY = "read_only"
    CONNECTION_LOST = "connection_lost"
    UNKNOWN = "unknown"
    AUTH_FAILED = "auth_failed"
    PG_HBA_REJECTED = "pg_hba_rejected"
    AUTH_METHOD = "auth_method"
    DATABASE_MISSING = "database_missing"
    DATABASE_CLOSED = "database_closed"
    TLS_UNAVAILABLE = "tls_unavailable"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_HOSTNAME = "tls_hostname"
    TLS_CA_MISSING = "tls_ca_missing"
    TLS_FAILED = "tls_failed"
    EXTENSION_MISSING = "extension_missing"
    EXTENSION_CREATE_RACE = "extension_create_race"
    MIGRATION_FAILED = "migration_failed"
    MIGRATIONS_PENDING = "migrations_pending"
    MIGRATION_LOCK_HELD = "migration_lock_held"
    MIGRATION_LOCK_LOST = "migration_lock_lost"
    MIGRATION_POOLER = "migration_pooler"
    MIGRATION_LOCK_TIMEOUT = "migration_lock_timeout"
    SYSTEM_CHECKS_FAILED = "system_checks_failed"
    FOLLOW_UP_FAILED = "follow_up_failed"
    CONFIG_INVALID = "config_invalid"
    LIBPQ_OPTION = "libpq_option"
    USAGE = "usage"
    OUTPUT_FAILED = "output_failed"
    CHECK_EXTRA_MISSING = "check_extra_missing"
    INTERNAL_ERROR = "internal_error"


class ReasonInfo(NamedTuple):
    """A reason's failure class, whether waiting can heal it, and the advice."""

    exit_class: ExitClass
    retried: bool
    hint: str


_CHECK_NETWORK = (
    "check that SQL_HOST and SQL_PORT are right, that the database service is running, "
    "and that network policies or security groups let this pod reach it"
)

REASONS: dict[Reason, ReasonInfo] = {
    Reason.DNS: ReasonInfo(
        UNREACHABLE,
        True,
        "check the host name and that its DNS record or Kubernetes Service exists; in "
        "docker compose, that this service is on the database's network; a NetworkPolicy "
        "that blocks kube-dns makes every lookup time out",
    ),
    Reason.REFUSED: ReasonInfo(
        UNREACHABLE, True, f"nothing accepted the connection: {_CHECK_NETWORK}"
    ),
    Reason.TIMEOUT: ReasonInfo(UNREACHABLE, True, f"nothing answered in time: {_CHECK_NETWORK}"),
    Reason.NETWORK: ReasonInfo(UNREACHABLE, True, f"no route to the server: {_CHECK_NETWORK}"),
    Reason.STARTING_UP: ReasonInfo(
        UNREACHABLE,
        True,
        "the server is starting, shutting down or recovering; this heals by itself, "
        "if it lasts read the server's log",
    ),
    Reason.TOO_MANY_CLIENTS: ReasonInfo(
        UNREACHABLE,
        True,
        "all connection slots are taken: raise max_connections, put a pooler in front, "
        "or find the client that holds the connections",
    ),
    Reason.POOLER_WAITING: ReasonInfo(
        UNREACHABLE,
        True,
        "a connection pooler (PgBouncer, a CloudNativePG Pooler) answered, but it cannot "
        "log in to the database behind it yet: check the database, then the pooler's log",
    ),
    Reason.READ_ONLY: ReasonInfo(
        UNREACHABLE,
        True,
        "the -rw service reached a server in recovery (a failover in progress, or a "
        "CloudNativePG replica cluster whose primary is never writable): check the "
        "Cluster's status and that the -rw service points at the primary",
    ),
    Reason.CONNECTION_LOST: ReasonInfo(
        UNREACHABLE,
        True,
        "the connection was lost before the check finished (a restart, a failover, or a "
        "proxy or pooler cutting it): this heals by itself, if it lasts read the server's log",
    ),
    Reason.UNKNOWN: ReasonInfo(
        UNREACHABLE,
        True,
        "a message nobody has classified: read it, and the server's log; it is retried "
        "until the deadline, and for at most 60 s in a row when there is none",
    ),
    Reason.AUTH_FAILED: ReasonInfo(
        AUTH_FAILED,
        False,
        "check SQL_USER, SQL_PASSWORD (or the secret behind them) and SQL_DATABASE, and "
        "that the role may log in to that database",
    ),
    Reason.PG_HBA_REJECTED: ReasonInfo(
        AUTH_FAILED,
        False,
        "pg_hba.conf has no rule for this user, database, address and encryption: add "
        "one on the server; if the server takes only TLS (hostssl, rds.force_ssl=1), "
        "use SQL_SSL_MODE=prefer or stronger instead of disable",
    ),
    Reason.AUTH_METHOD: ReasonInfo(
        AUTH_FAILED,
        False,
        "the server asked for an authentication method the client refuses "
        "(PGREQUIREAUTH, PGCHANNELBINDING): unset the variable or change the server",
    ),
    Reason.DATABASE_MISSING: ReasonInfo(
        DATABASE_MISSING, False, "check SQL_DATABASE, or create the database"
    ),
    Reason.DATABASE_CLOSED: ReasonInfo(
        DATABASE_MISSING,
        False,
        "the database does not accept connections (ALLOW_CONNECTIONS false): "
        "ALTER DATABASE ... ALLOW_CONNECTIONS true, or check SQL_DATABASE",
    ),
    Reason.TLS_UNAVAILABLE: ReasonInfo(
        TLS_FAILED,
        False,
        "the server does not offer TLS but the sslmode requires it: enable ssl on the "
        "server, or use SQL_SSL_MODE=prefer for a database on a private network",
    ),
    Reason.TLS_UNTRUSTED: ReasonInfo(
        TLS_FAILED,
        False,
        "the server's certificate is not signed by a CA in the root certificate file: "
        "mount the right CA bundle (RDS: the regional or global bundle; RDS Proxy: "
        "SQL_SSL_ROOT_CERT=system)",
    ),
    Reason.TLS_HOSTNAME: ReasonInfo(
        TLS_FAILED,
        False,
        "the certificate does not name SQL_HOST: connect with a name the certificate "
        "lists (without a trailing dot)",
    ),
    Reason.TLS_CA_MISSING: ReasonInfo(
        TLS_FAILED,
        False,
        "the root certificate file cannot be read: check the mount, the path and the "
        "file's permissions",
    ),
    Reason.TLS_FAILED: ReasonInfo(
        TLS_FAILED, False, "the TLS handshake failed: check the sslmode and the certificates"
    ),
    Reason.EXTENSION_MISSING: ReasonInfo(
        CHECK_FAILED,
        False,
        "a required extension is not installed in the database; see the message for "
        "how to install it for this kind of database",
    ),
    Reason.EXTENSION_CREATE_RACE: ReasonInfo(
        UNREACHABLE,
        True,
        "another replica created the same extension at the same moment; the next attempt "
        "finds it installed",
    ),
    Reason.MIGRATION_FAILED: ReasonInfo(
        CHECK_FAILED, False, "a migration or a follow-up command failed: read its output"
    ),
    Reason.MIGRATIONS_PENDING: ReasonInfo(
        UNREACHABLE,
        True,
        "a pod that may migrate (python -m preflight.django migrate) has not applied these "
        "yet: check that it runs and read its log",
    ),
    Reason.MIGRATION_LOCK_HELD: ReasonInfo(
        UNREACHABLE,
        True,
        "another runner holds the migration lock (pid shown): its migrations or follow-up "
        "commands are still running, or it is stuck; pg_stat_activity shows what it does",
    ),
    Reason.MIGRATION_LOCK_LOST: ReasonInfo(
        CHECK_FAILED,
        False,
        "the migrate runner's lock session ended mid-run (the server, a proxy or the network "
        "ended it), so it stopped before the next migration or command: the next runner "
        "takes over; read the server's log for why the session ended",
    ),
    Reason.MIGRATION_POOLER: ReasonInfo(
        POOLER,
        False,
        "migrate must reach PostgreSQL itself, not a pooler: set SQL_HOST for the migrate "
        "container to the Cluster's -rw service (CloudNativePG) or the server's own address; "
        "RDS Proxy is fine (it pins the session)",
    ),
    Reason.MIGRATION_LOCK_TIMEOUT: ReasonInfo(
        CHECK_FAILED,
        False,
        "a migration waited longer than PREFLIGHT_MIGRATE_LOCK_TIMEOUT for a table lock, "
        "every time it was tried: the blocking session is named (pid, application_name, "
        "transaction start); end or wait out its transaction, then run again",
    ),
    Reason.SYSTEM_CHECKS_FAILED: ReasonInfo(
        CHECK_FAILED,
        False,
        "Django's system checks found errors (listed above, as manage.py check shows them): "
        "fix them, or pass --skip-checks to migrate without them",
    ),
    Reason.FOLLOW_UP_FAILED: ReasonInfo(
        CHECK_FAILED,
        False,
        "a --then command failed under the lock (its exit status is the runner's; "
        "statuses outside 1-255 become 1): read its output",
    ),
    Reason.CONFIG_INVALID: ReasonInfo(
        CONFIG_INVALID,
        False,
        "fix each variable named in `problems`; once they are valid, `preflight explain` "
        "shows the resolved plan",
    ),
    Reason.LIBPQ_OPTION: ReasonInfo(
        CONFIG_INVALID,
        False,
        "libpq or the server rejected a connection option: check the PG* variables "
        "(PGOPTIONS, PGSERVICE, PGTARGETSESSIONATTRS, ...) that `preflight explain` lists",
    ),
    Reason.USAGE: ReasonInfo(USAGE, False, "run `preflight --help`"),
    Reason.OUTPUT_FAILED: ReasonInfo(
        USAGE, False, "`explain` could not write its document: check stdout"
    ),
    Reason.CHECK_EXTRA_MISSING: ReasonInfo(
        USAGE,
        False,
        "the check needs its dependencies: pip install 'django-db-preflight[check]' "
        "(the image has them)",
    ),
    Reason.INTERNAL_ERROR: ReasonInfo(
        INTERNAL_ERROR, False, "a bug in the preflight: please report it with the log line"
    ),
}


def retried_reasons() -> list[Reason]:
    """The reasons the check waits out, in table order."""
    return [reason for reason, info in REASONS.items() if info.retried]


def epilog() -> str:
    """The exit-code summary for ``--help``."""
    codes = ", ".join(f"{c.code} {c.name}" for c in CLASSES if c is not INTERRUPTED)
    return f"Exit codes: {codes}, 130/143 interrupted. Retried until the deadline: " + (
        ", ".join(retried_reasons())
    )
