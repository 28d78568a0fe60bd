"""Required extensions: what is installed, what this role may create, what it needs.

One query reads, for each required extension and everything it needs (``requires``
of its default version, followed down), whether it is installed, available on the
server, and trusted; and whether this role is a superuser and may create in the
database.  With creation on, ``CREATE EXTENSION IF NOT EXISTS ... CASCADE`` runs
for each one this role may create with all it needs.  Two replicas creating the
same extension at once is a race the loser retries (``extension_create_race``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from ._errors import CheckFailed, error_for
from ._exit_codes import Reason
from ._hosts import Kind


class Extensions(NamedTuple):
    """Required extensions, sorted by what a person must do about them."""

    installed: tuple[str, ...] = ()
    created: tuple[str, ...] = ()  # created by this run (PREFLIGHT_CREATE_EXTENSIONS)
    available: tuple[str, ...] = ()  # on the server, not installed in the database
    unavailable: tuple[str, ...] = ()  # not on the server at all
    # "earthdistance needs cube": what an available extension needs that is missing
    needs: tuple[str, ...] = ()
    # why this role may not create an available extension, and who can
    not_permitted: tuple[str, ...] = ()
    create: bool = False  # creation was on
    creatable: tuple[str, ...] = ()  # available ones this role may create (creation off)

    @property
    def ok(self) -> bool:
        return not self.available and not self.unavailable

    def as_log(self) -> dict[str, list[str]]:
        return {
            "installed": list(self.installed),
            "created": list(self.created),
            "available_not_installed": list(self.available),
            "unavailable": list(self.unavailable),
        }


_QUERY = """
WITH RECURSIVE need(root, name) AS (
    SELECT w, w FROM unnest(%s::name[]) AS w
  UNION
    SELECT need.root, r
    FROM need
    JOIN pg_available_extensions a ON a.name = need.name
    JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
    CROSS JOIN LATERAL unnest(v.requires) AS r
    WHERE NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = need.name)
)
SELECT need.root,
       need.name,
       e.extversion IS NOT NULL AS installed,
       a.name IS NOT NULL AS available,
       coalesce(v.trusted, false) AS trusted
FROM need
LEFT JOIN pg_extension e ON e.extname = need.name
LEFT JOIN pg_available_extensions a ON a.name = need.name
LEFT JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
ORDER BY need.root, need.root <> need.name, need.name
"""
_ROLE = """
SELECT current_user,
       (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user),
       has_database_privilege(current_database(), 'CREATE'),
       current_database(),
       (SELECT pg_get_userbyid(d.datdba) FROM pg_database d
        WHERE d.datname = current_database())
"""

# What to do about an extension that is available but not installed, by kind.
INSTALL_HINTS: dict[Kind, str] = {
    Kind.CLOUDNATIVEPG: "declare it in the CloudNativePG Database resource: "
    "spec.extensions: [{name: NAME, ensure: present}]",
    Kind.INTERNAL: "docker compose: mount an init SQL file with CREATE EXTENSION IF NOT "
    "EXISTS NAME CASCADE; into /docker-entrypoint-initdb.d (it runs on an empty data volume "
    "only)",
    Kind.LOCAL: "run CREATE EXTENSION NAME CASCADE; as a superuser, or an init SQL file in "
    "/docker-entrypoint-initdb.d for a compose database",
    Kind.AWS_RDS: "run CREATE EXTENSION NAME CASCADE; as the RDS master user (rds_superuser)",
    Kind.EXTERNAL: "run CREATE EXTENSION NAME CASCADE; as a role allowed to create it",
}


class _Row(NamedTuple):
    name: str
    installed: bool
    available: bool
    trusted: bool


class _Role(NamedTuple):
    name: str
    superuser: bool
    may_create_in_database: bool
    database: str
    owner: str


def _why_not(name: str, missing: list[_Row], role: _Role) -> str | None:
    """Why ``role`` may not create ``name`` with all it needs, naming who can; or None."""
    if role.superuser:
        return None
    untrusted = [row.name for row in missing if not row.trusted]
    if untrusted:
        return (
            f"role {role.name} may not create {name}: {', '.join(untrusted)} "
            f"{'is' if len(untrusted) == 1 else 'are'} not trusted, so only a superuser "
            "(on RDS the master user) can create it"
        )
    if not role.may_create_in_database:
        return (
            f"role {role.name} may not create {name}: it is trusted, but the role lacks the "
            f"CREATE privilege on database {role.database}; its owner {role.owner} (or a "
            f"superuser) can create it, or GRANT CREATE ON DATABASE {role.database} TO "
            f"{role.name}"
        )
    return None


def _create(conn: psycopg.Connection[Any], name: str) -> None:
    """``CREATE EXTENSION IF NOT EXISTS name CASCADE``; a concurrent creator is a race."""
    statement = sql.SQL("CREATE EXTENSION IF NOT EXISTS {} CASCADE").format(sql.Identifier(name))
    try:
        conn.execute(statement)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject) as exc:
        raise error_for(
            Reason.EXTENSION_CREATE_RACE,
            f"another session created {name} (or what it needs) at the same moment "
            f"({exc.sqlstate}); the next attempt finds it installed",
        ) from None


def read_extensions(
    conn: psycopg.Connection[Any], names: tuple[str, ...], create: bool
) -> Extensions:
    """What the database has of ``names``; with ``create``, create what this role may."""
    rows: dict[str, list[_Row]] = {}
    for root, *row in conn.execute(_QUERY, [list(names)]).fetchall():
        rows.setdefault(root, []).append(_Row(*row))
    role = _Role(*(conn.execute(_ROLE).fetchone() or ("", False, False, "", "")))
    found: dict[str, list[str]] = {
        k: []
        for k in ("installed", "created", "available", "unavailable", "needs", "no", "creatable")
    }
    for name in sorted(rows):
        wanted, *deps = rows[name]
        if wanted.installed:
            found["installed"].append(name)
            continue
        if not wanted.available:
            found["unavailable"].append(name)
            continue
        lacking = [d.name for d in deps if not d.installed and not d.available]
        if lacking:
            found["unavailable"].append(name)
            found["needs"].append(
                f"{name} needs {', '.join(lacking)}, which the server does not have"
            )
            continue
        missing = [wanted, *(d for d in deps if not d.installed)]
        why = _why_not(name, missing, role)
        if create and why is None:
            _create(conn, name)
            found["created"].append(name)
            continue
        found["available"].append(name)
        if len(missing) > 1:
            found["needs"].append(
                f"{name} needs {', '.join(d.name for d in missing[1:])}, not installed either"
            )
        found["no" if why is not None else "creatable"].append(why or name)
    return Extensions(
        installed=tuple(found["installed"]),
        created=tuple(found["created"]),
        available=tuple(found["available"]),
        unavailable=tuple(found["unavailable"]),
        needs=tuple(found["needs"]),
        not_permitted=tuple(found["no"]),
        create=create,
        creatable=tuple(found["creatable"]),
    )


def require(extensions: Extensions, kind: Kind) -> None:
    """Raise :class:`CheckFailed` when a required extension is not installed."""
    if extensions.ok:
        return
    parts = []
    unavailable = [
        n
        for n in extensions.unavailable
        if not any(s.startswith(f"{n} needs ") for s in extensions.needs)
    ]
    if unavailable:
        parts.append(
            f"not available on the server: {', '.join(unavailable)} (install its "
            "package on the server; CloudNativePG: an image that has it)"
        )
    parts.extend(extensions.needs)
    if extensions.available:
        names = ", ".join(extensions.available)
        hint = INSTALL_HINTS[kind].replace("NAME", extensions.available[0])
        advice = list(extensions.not_permitted)
        if not extensions.create and extensions.creatable:
            advice.append(
                "or set PREFLIGHT_CREATE_EXTENSIONS=true: this role may create "
                + ", ".join(extensions.creatable)
            )
        parts.append(
            f"available but not installed in the database: {names} ({hint}; "
            + "; ".join(advice)
            + ")"
        )
    raise CheckFailed("; ".join(parts), reason=Reason.EXTENSION_MISSING)
