"""Django's real database backends, for tests of what ``database_config()`` gives them."""

from __future__ import annotations

from typing import Any


def settings_dict(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the keys Django's connection handler fills in for a real settings.py."""
    return {
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {},
        "OPTIONS": {},
        **config,
    }


def configure() -> None:
    """Django set up with no databases of its own (once per process)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={}, USE_TZ=True)
        django.setup()


def postgresql(config: dict[str, Any]) -> Any:
    """A connection wrapper of Django's PostgreSQL backend for ``config`` (not yet open)."""
    configure()
    from django.db.backends.postgresql.base import DatabaseWrapper

    return DatabaseWrapper(settings_dict(config), alias="app")
