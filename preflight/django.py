"""Django settings helper: the app's ``DATABASES["default"]`` from the same plan.

Use it in ``settings.py`` so the app and the preflight can never disagree::

    from preflight.django import database_config

    DATABASES = {"default": database_config()}

Importing this module imports neither Django nor psycopg.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import _env
from ._env import SQLITE_ENGINE
from ._plan import resolve

__all__ = ["database_config"]


def database_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return ``DATABASES["default"]`` for ``environ`` (default: ``os.environ``).

    Raises :class:`preflight.ConfigError` listing every problem when the
    environment is invalid.
    """
    settings, _options = _env.load(os.environ if environ is None else environ)
    if settings.engine == "sqlite":
        return {"ENGINE": SQLITE_ENGINE, "NAME": settings.database or "db.sqlite3"}
    plan = resolve(settings)
    options: dict[str, str] = {"sslmode": plan.sslmode, "gssencmode": plan.gssencmode}
    if plan.sslrootcert is not None:
        options["sslrootcert"] = plan.sslrootcert
    if plan.target_session_attrs is not None:
        options["target_session_attrs"] = plan.target_session_attrs
    password = plan.current_password()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": plan.database,
        "USER": plan.user,
        "PASSWORD": password.reveal() if password is not None else "",
        "HOST": plan.host,
        "PORT": str(plan.port),
        "OPTIONS": options,
    }


if __name__ == "__main__":  # python -m preflight.django migrate [--then CMD ...] | --check
    from . import _migrate

    raise SystemExit(_migrate.main())
