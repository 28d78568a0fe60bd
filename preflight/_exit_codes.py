"""Failure classes and their exit codes: the one table the README documents."""

from __future__ import annotations

from typing import NamedTuple


class ExitClass(NamedTuple):
    """One row of the exit-code table."""

    name: str
    code: int
    cause: str
    retried: str


READY = ExitClass("ready", 0, "the database answered a query (also: engine is sqlite)", "")
USAGE = ExitClass("usage", 2, "bad command-line flags", "no")
CONFIG_INVALID = ExitClass("config_invalid", 3, "invalid or missing environment", "no")
AUTH_FAILED = ExitClass(
    "auth_failed",
    4,
    "wrong password, role missing, `pg_hba.conf` rejects the user, no CONNECT privilege",
    "no (unless `PREFLIGHT_RETRY_AUTH`)",
)
DATABASE_MISSING = ExitClass("database_missing", 5, "the database does not exist", "no")
TLS_FAILED = ExitClass(
    "tls_failed",
    6,
    "server requires TLS but sslmode is `disable`, server has no TLS but sslmode requires "
    "it, certificate not trusted, host name mismatch, CA file missing",
    "no",
)
CHECK_FAILED = ExitClass(
    "check_failed",
    7,
    "a required extension is missing and this user cannot create it",
    "no",
)
UNREACHABLE = ExitClass(
    "unreachable",
    10,
    "the deadline passed while the last reason was one of `dns`, `refused`, `timeout`, "
    "`network`, `starting_up`, `too_many_clients`, `read_only`, `connection_lost`, `unknown`",
    "yes, until the deadline",
)
# SIGINT and SIGTERM: 128 + the signal number, as shells report it.
INTERRUPTED = ExitClass("interrupted", 130, "SIGINT (130) / SIGTERM (143)", "")

TABLE: tuple[ExitClass, ...] = (
    READY,
    USAGE,
    CONFIG_INVALID,
    AUTH_FAILED,
    DATABASE_MISSING,
    TLS_FAILED,
    CHECK_FAILED,
    UNREACHABLE,
    INTERRUPTED,
)


def interrupted_code(signum: int) -> int:
    """The exit code for a stop by signal ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum
