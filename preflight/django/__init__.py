"""Django settings helper: the app's ``DATABASES["default"]`` from the check's own plan.

Use it in ``settings.py`` so the app and the preflight agree::

    from preflight.django import database_config

    DATABASES = {"default": database_config(base_dir=BASE_DIR)}

It imports only the standard library (never Django's database backends, never
psycopg), reads only ``SQL_*`` and ``DATABASE_URL`` (never ``PREFLIGHT_*``),
and passes Django only options that libpq 10 and later understand, so it
suits an app on psycopg2 with libpq 15 as well as one on psycopg 3.

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
from .._settings import POSTGRESQL_ENGINE, SQLITE_ENGINE, read_settings

__all__ = ["database_config"]

SQLITE_DEFAULT_NAME = "db.sqlite3"


def _improperly_configured(problems: tuple[Problem, ...]) -> Exception:
    summary = "; ".join(str(p) for p in problems)
    try:
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return ConfigError(problems)
    error: Exception = ImproperlyConfigured(f"database settings: {summary}")
    return error


def database_config(
    environ: Mapping[str, str] | None = None, *, base_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Return ``DATABASES["default"]`` for ``environ`` (default: ``os.environ``).

    ``base_dir`` anchors a relative SQLite ``NAME`` (default ``db.sqlite3``), so it
    does not depend on the working directory.
    """
    environ = os.environ if environ is None else environ
    found = read_settings(environ)
    settings = found.settings
    if settings.engine == "sqlite":
        if found.problems:
            raise _improperly_configured(found.problems)
        name = Path(settings.database or SQLITE_DEFAULT_NAME)
        if base_dir is not None and not name.is_absolute():
            name = Path(base_dir) / name
        return {"ENGINE": SQLITE_ENGINE, "NAME": str(name)}
    if not found.configured:
        # Nothing to connect to: fine at import, Django's own error at connection time.
        return {
            "ENGINE": POSTGRESQL_ENGINE,
            **dict.fromkeys(("NAME", "USER", "PASSWORD", "HOST", "PORT"), ""),
            "OPTIONS": {},
        }
    if found.problems:
        raise _improperly_configured(found.problems)
    planned = build_plan(settings, environ)
    if planned.plan is None:
        raise _improperly_configured(planned.problems)
    params = planned.plan.libpq_params()
    return {
        "ENGINE": POSTGRESQL_ENGINE,
        "NAME": params.pop("dbname"),
        "USER": params.pop("user"),
        "PASSWORD": settings.password.reveal() if settings.password is not None else "",
        "HOST": params.pop("host"),
        "PORT": params.pop("port"),
        "OPTIONS": params,
    }
