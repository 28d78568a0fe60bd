"""One attempt: log in, run a query, read what the server is.

This is the only module that talks to PostgreSQL.  Every failure leaves it as
a classified :class:`PreflightError`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg

from ._errors import CheckFailed, PreflightError
from ._failures import classify_failure, error_for
from ._plan import Plan


class Extensions(NamedTuple):
    """Required extensions, sorted by what a person must do about them."""

    installed: tuple[str, ...] = ()
    creatable: tuple[str, ...] = ()  # available, not installed, this user may create
    not_creatable: tuple[str, ...] = ()  # available, not installed, needs a privileged user
    unavailable: tuple[str, ...] = ()  # not on the server at all

    @property
    def ok(self) -> bool:
        return not self.not_creatable and not self.unavailable

    def as_log(self) -> dict[str, list[str]]:
        return {
            "installed": list(self.installed),
            "available_creatable": list(self.creatable),
            "available_not_creatable": list(self.not_creatable),
            "unavailable": list(self.unavailable),
        }


class ServerFacts(NamedTuple):
    """What one successful attempt learned about the server."""

    server_version: str
    tls: bool
    tls_protocol: str | None
    in_recovery: bool
    extensions: Extensions = Extensions()


_FACTS = """
SELECT current_setting('server_version'),
       pg_is_in_recovery(),
       (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())
"""

_EXTENSIONS = """
SELECT want.name,
       a.installed_version IS NOT NULL AS installed,
       a.name IS NOT NULL AS available,
       coalesce((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v
                 WHERE v.name = want.name), false) AS trusted
FROM unnest(%s::text[]) AS want(name)
LEFT JOIN pg_available_extensions a ON a.name = want.name
ORDER BY want.name
"""

_MAY_CREATE = """
SELECT r.rolsuper, has_database_privilege(current_database(), 'CREATE')
FROM pg_roles r WHERE r.rolname = current_user
"""


def _check_extensions(conn: psycopg.Connection[Any], names: tuple[str, ...]) -> Extensions:
    rows = conn.execute(_EXTENSIONS, [list(names)]).fetchall()
    superuser, can_create = conn.execute(_MAY_CREATE).fetchone() or (False, False)
    found: dict[str, list[str]] = {"i": [], "c": [], "n": [], "u": []}
    for name, installed, available, trusted in rows:
        if installed:
            found["i"].append(name)
        elif not available:
            found["u"].append(name)
        elif superuser or (trusted and can_create):
            found["c"].append(name)
        else:
            found["n"].append(name)
    return Extensions(*(tuple(found[k]) for k in "icnu"))


def probe(
    plan: Plan, connect_timeout: int, require_extensions: tuple[str, ...] = ()
) -> ServerFacts:
    """Connect once, run ``SELECT 1`` and read the facts; raise a classified error."""
    try:
        with psycopg.connect(plan.conninfo(connect_timeout), autocommit=True) as conn:
            one = conn.execute("SELECT 1").fetchone()
            if one != (1,):
                raise error_for("unknown", f"SELECT 1 returned {one!r}")
            version, in_recovery, protocol = conn.execute(_FACTS).fetchone() or ("", False, None)
            if plan.role == "rw" and in_recovery:
                raise error_for(
                    "read_only", f"{plan.host} reached a server in recovery (a standby)"
                )
            extensions = (
                _check_extensions(conn, require_extensions) if require_extensions else Extensions()
            )
            return ServerFacts(
                server_version=str(version),
                tls=conn.pgconn.ssl_in_use,
                tls_protocol=protocol,
                in_recovery=bool(in_recovery),
                extensions=extensions,
            )
    except PreflightError:
        raise
    except psycopg.Error as exc:
        raw = None
        if exc.pgconn is not None and exc.pgconn.error_message:
            raw = exc.pgconn.error_message.decode("utf-8", "replace")
        raise classify_failure(exc, host=plan.host, raw_message=raw) from None


def require(facts: ServerFacts) -> None:
    """Raise :class:`CheckFailed` when a required extension cannot be had."""
    ext = facts.extensions
    if ext.ok:
        return
    parts = []
    if ext.unavailable:
        parts.append(f"not available on the server: {', '.join(ext.unavailable)}")
    if ext.not_creatable:
        parts.append(
            f"available but not installed, and this user may not create: "
            f"{', '.join(ext.not_creatable)}"
        )
    hint = (
        "install the extension's package on the server (CloudNativePG: an image that has "
        "it; RDS: a supported extension), then CREATE EXTENSION as a user allowed to"
    )
    raise CheckFailed("; ".join(parts), reason="extension_missing", hint=hint)
