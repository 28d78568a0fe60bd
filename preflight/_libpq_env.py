"""libpq's own environment: the ``PG*`` variables that can change a connection.

The decision: they are honoured, exactly as libpq honours them, because the
app's libpq (psycopg2 or psycopg 3 under Django) reads the same variables from
the same environment.  The check passes the same explicit parameters as
``database_config()`` gives Django (host, port, dbname, user, sslmode,
gssencmode, sslrootcert, target_session_attrs, the password when one is set,
and every libpq parameter ``DATABASE_URL`` gives), so a ``PG*`` variable for one
of those is overridden for both, and every other one acts on both alike.  What
it cannot do is act silently: the plan and ``explain`` list each one that is set,
with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from ._result import Found
from ._values import VALUE_LIMIT

# Variables libpq reads that can change where, as whom or how it connects.
# (PGAPPNAME, PGCLIENTENCODING, PGDATESTYLE, PGTZ and the like cannot.)
CONNECTION_VARIABLES = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLNEGOTIATION",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGREQUIREAUTH",
    "PGCHANNELBINDING",
    "PGGSSENCMODE",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGCONNECT_TIMEOUT",
    "PGKRBSRVNAME",
)
# Overridden by the explicit parameters both the check and the app pass.
OVERRIDDEN = frozenset({"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGGSSENCMODE"})
SECRET = frozenset({"PGPASSWORD"})


class LibpqEnv(NamedTuple):
    """The ``PG*`` variables in force (what they do to the plan: the warnings beside it)."""

    variables: dict[str, str]  # name -> value shown ("set" for a secret)
    hostaddr: str | None  # PGHOSTADDR: libpq connects there and skips DNS


def _pgpass(environ: Mapping[str, str]) -> str | None:
    path = environ.get("PGPASSFILE") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".pgpass"
    )
    return path if os.path.isfile(path) else None


def _pgpass_warning(path: str) -> str:
    if os.stat(path).st_mode & 0o077:
        return (
            f"no password is set, and libpq ignores {path}: it allows group or world "
            "access (libpq wants mode 0600 or less; a Kubernetes Secret volume needs "
            "defaultMode: 0600)"
        )
    return (
        f"no password is set, so libpq may take one from {path} for the check and for the app alike"
    )


def _shown(name: str, value: str) -> str:
    if name in SECRET:
        return "set"
    if len(value) > VALUE_LIMIT:
        return f"({len(value)} characters, not shown)"
    return value


def read_libpq_env(
    environ: Mapping[str, str],
    *,
    password_set: bool,
    rootcert_set: bool,
    target_session_attrs_set: bool,
) -> Found[LibpqEnv]:
    """What libpq will take from ``environ`` beyond the explicit parameters."""
    shown: dict[str, str] = {}
    warnings: list[str] = []
    for name in CONNECTION_VARIABLES:
        value = environ.get(name)
        if not value:
            continue
        shown[name] = _shown(name, value)
        if name in OVERRIDDEN:
            warnings.append(f"{name} is set but ignored: the SQL_* settings override it")
        elif name == "PGPASSWORD" and password_set:
            warnings.append("PGPASSWORD is set but ignored: the SQL_* password overrides it")
        elif name == "PGSSLROOTCERT" and rootcert_set:
            warnings.append("PGSSLROOTCERT is set but ignored: SQL_SSL_ROOT_CERT overrides it")
        elif name == "PGTARGETSESSIONATTRS" and target_session_attrs_set:
            warnings.append(
                "PGTARGETSESSIONATTRS is set but ignored: the -rw service sets read-write"
            )
        else:
            warnings.append(f"{name} is set: libpq uses it for the check and for the app alike")
    if not password_set and not environ.get("PGPASSWORD"):
        pgpass = _pgpass(environ)
        if pgpass is not None:
            shown["PGPASSFILE"] = pgpass
            warnings.append(_pgpass_warning(pgpass))
    hostaddr = environ.get("PGHOSTADDR") or None
    return Found(LibpqEnv(shown, hostaddr), (), tuple(warnings))
