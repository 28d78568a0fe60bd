"""Django settings helper: the app's ``DATABASES["default"]`` from the check's own plan.

Use it in ``settings.py`` so the app and the preflight agree::

    from preflight.django import database_config

    DATABASES = {"default": database_config(base_dir=BASE_DIR)}

It imports only the standard library (never Django's database backends, never
psycopg), reads only ``SQL_*`` and ``DATABASE_URL`` (never ``PREFLIGHT_*``),
and from ``SQL_*`` passes Django only options that libpq 10 and later
understand, so it suits an app on psycopg2 with libpq 15 as well as one on
psycopg 3.  A ``DATABASE_URL`` parameter is passed as given (the check warns
about one that needs a newer libpq).

- No database variable at all (an image build running ``collectstatic``):
  no error at import; Django raises its own ``ImproperlyConfigured`` ("Please
  supply the NAME value") when a connection is first made.
- Invalid values: ``django.core.exceptions.ImproperlyConfigured`` (or
  :class:`preflight.ConfigError` where Django is not importable), naming
  every variable at fault.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError, Problem
from .._plan import build_plan
from .._settings import POSTGIS_ENGINE, POSTGRESQL_ENGINE, SQLITE_ENGINE, read_settings
from .._url import MEMORY

__all__ = ["database_config"]

SQLITE_DEFAULT_NAME = "db.sqlite3"


def _improperly_configured(problems: tuple[Problem, ...], secrets: tuple[str, ...]) -> Exception:
    """The error for ``problems``, with the password (pasted into another variable and
    quoted by a problem) withheld: the import traceback lands in the app's log."""
    from .._redact import Redactor  # standard library only, and only on this error path

    redactor = Redactor(secrets)
    problems = tuple(Problem(p.variable, redactor.text(p.message)) for p in problems)
    summary = "; ".join(str(p) for p in problems)
    try:
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return ConfigError(problems)
    error: Exception = ImproperlyConfigured(f"database settings: {summary}")
    return error


def _connection_keys(
    conn_max_age: int | None,
    conn_health_checks: bool,
    pool: bool | Mapping[str, Any],
    engine: str,
) -> tuple[dict[str, Any], list[Problem]]:
    """``CONN_MAX_AGE``/``CONN_HEALTH_CHECKS`` (only when not Django's default) and the
    ``pool`` option, each checked the way Django would refuse it, but at import."""
    keys: dict[str, Any] = {}
    problems: list[Problem] = []
    if conn_max_age is not None and (
        isinstance(conn_max_age, bool) or not isinstance(conn_max_age, int) or conn_max_age < 0
    ):
        problems.append(Problem("conn_max_age", "must be None or a whole number of seconds >= 0"))
    elif conn_max_age != 0:
        keys["CONN_MAX_AGE"] = conn_max_age
    if conn_health_checks:
        keys["CONN_HEALTH_CHECKS"] = True
    if pool:
        if engine == SQLITE_ENGINE:
            problems.append(Problem("pool", "is for PostgreSQL; SQLite has no connection pool"))
        elif conn_max_age != 0:
            problems.append(
                Problem(
                    "pool",
                    "cannot be used with a non-zero conn_max_age: Django refuses persistent "
                    "connections with a pool; leave conn_max_age at 0",
                )
            )
        else:
            problems.extend(_pool_problems())
    return keys, problems


def _pool_problems() -> list[Problem]:
    """Django 5.1+ with psycopg 3: what a connection pool needs (found without importing)."""
    import importlib.metadata
    import importlib.util

    problems = []
    if importlib.util.find_spec("psycopg") is None:
        problems.append(Problem("pool", "needs psycopg 3 (pip install 'psycopg[pool]')"))
    elif importlib.util.find_spec("psycopg_pool") is None:
        problems.append(Problem("pool", "needs psycopg_pool (pip install 'psycopg[pool]')"))
    try:
        major, minor = (int(x) for x in importlib.metadata.version("django").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return problems
    if (major, minor) < (5, 1):
        problems.append(Problem("pool", f"needs Django 5.1 or later (this is {major}.{minor})"))
    return problems


def _sqlite(name: str | None, base_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """SQLite's ``NAME``: ``:memory:`` and ``file:`` URIs as they are, a relative file
    anchored at ``base_dir``."""
    name = name or SQLITE_DEFAULT_NAME
    if name == MEMORY:
        return {"ENGINE": SQLITE_ENGINE, "NAME": name}
    if name.startswith("file:"):
        return {"ENGINE": SQLITE_ENGINE, "NAME": name, "OPTIONS": {"uri": True}}
    path = Path(name)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return {"ENGINE": SQLITE_ENGINE, "NAME": str(path)}


def database_config(
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    conn_max_age: int | None = 0,
    conn_health_checks: bool = False,
    pool: bool | Mapping[str, Any] = False,
    disable_server_side_cursors: bool | None = None,
) -> dict[str, Any]:
    """Return ``DATABASES["default"]`` for ``environ`` (default: ``os.environ``).

    ``base_dir`` anchors a relative SQLite ``NAME`` (default ``db.sqlite3``), so it
    does not depend on the working directory; ``:memory:`` and ``file:`` URIs stay
    as they are.  The other keywords are those of ``dj_database_url.config()``:

    - ``conn_max_age``, ``conn_health_checks``: Django's ``CONN_MAX_AGE`` and
      ``CONN_HEALTH_CHECKS`` (set only when not Django's default);
    - ``pool``: Django 5.1+'s ``OPTIONS["pool"]`` (``True`` or the pool's arguments),
      psycopg 3 only, and refused with a non-zero ``conn_max_age`` as Django does;
    - ``disable_server_side_cursors``: ``None`` (the default) sets it for a host the
      plan classifies as a connection pooler, where a transaction-mode PgBouncer breaks
      server-side cursors; ``True``/``False`` decide it yourself.
    """
    environ = os.environ if environ is None else environ
    found = read_settings(environ)
    settings = found.value.settings
    engine = SQLITE_ENGINE if settings.engine == "sqlite" else POSTGRESQL_ENGINE
    keys, own = _connection_keys(conn_max_age, conn_health_checks, pool, engine)
    problems = [*found.problems, *own]
    if settings.engine == "sqlite":
        if problems:
            raise _improperly_configured(tuple(problems), found.value.secrets)
        return {**_sqlite(settings.database, base_dir), **keys}
    if not found.value.configured and not own:
        # Nothing to connect to: fine at import, Django's own error at connection time.
        return {
            "ENGINE": POSTGRESQL_ENGINE,
            **dict.fromkeys(("NAME", "USER", "PASSWORD", "HOST", "PORT"), ""),
            "OPTIONS": {},
            **keys,
        }
    if problems:
        raise _improperly_configured(tuple(problems), found.value.secrets)
    planned = build_plan(settings, environ)
    plan = planned.value
    if plan is None:
        raise _improperly_configured(planned.problems, found.value.secrets)
    params: dict[str, Any] = plan.libpq_params()
    if pool:
        params["pool"] = dict(pool) if isinstance(pool, Mapping) else True
    config: dict[str, Any] = {
        "ENGINE": POSTGIS_ENGINE if settings.gis else POSTGRESQL_ENGINE,
        "NAME": params.pop("dbname"),
        "USER": params.pop("user"),
        "PASSWORD": settings.password.reveal() if settings.password is not None else "",
        "HOST": params.pop("host"),
        "PORT": params.pop("port"),
        "OPTIONS": params,
        **keys,
    }
    if disable_server_side_cursors is None:
        disable_server_side_cursors = plan.pooler
    if disable_server_side_cursors:
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    return config
