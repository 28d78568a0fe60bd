"""The Django helper, checked against Django's real PostgreSQL backend."""

from __future__ import annotations

import sys
from typing import Any

import pytest

PASSWORD = "Django-Qw3'@:/%pw"


@pytest.fixture(scope="module")
def django_setup() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={}, USE_TZ=True)
        django.setup()


def connection_params(config: dict[str, Any]) -> dict[str, Any]:
    from django.db.backends.postgresql.base import DatabaseWrapper

    settings_dict = {
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {},
        **config,
    }
    return DatabaseWrapper(settings_dict, alias="default").get_connection_params()


def test_import_needs_neither_django_nor_psycopg() -> None:
    """Importing the helper pulls in neither Django nor psycopg."""
    import subprocess

    code = (
        "import sys, preflight.django; "
        "assert 'psycopg' not in sys.modules and 'django' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.usefixtures("django_setup")
def test_cloudnativepg_rw_reaches_the_driver() -> None:
    """For a -rw service Django hands the driver sslmode, gssencmode and read-write."""
    from preflight.django import database_config

    config = database_config(
        {
            "SQL_HOST": "balancer-postgres-rw",
            "SQL_DATABASE": "balancer",
            "SQL_USER": "balancer",
            "SQL_PASSWORD": PASSWORD,
        }
    )
    params = connection_params(config)
    assert params["host"] == "balancer-postgres-rw"
    assert params["port"] == "5432"
    assert params["dbname"] == "balancer"
    assert params["user"] == "balancer"
    assert params["password"] == PASSWORD
    assert params["sslmode"] == "disable"
    assert params["gssencmode"] == "disable"
    assert params["target_session_attrs"] == "read-write"


@pytest.mark.usefixtures("django_setup")
def test_rds_with_ca_bundle_reaches_the_driver() -> None:
    """For RDS with a CA bundle Django passes verify-full and the bundle's path."""
    from preflight.django import database_config

    config = database_config(
        {
            "SQL_HOST": "app.c1.eu-west-1.rds.amazonaws.com",
            "SQL_DATABASE": "balancer",
            "SQL_USER": "balancer",
            "SQL_PASSWORD": PASSWORD,
            "SQL_SSL_ROOT_CERT": "/etc/ssl/rds/global-bundle.pem",
        }
    )
    params = connection_params(config)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == "/etc/ssl/rds/global-bundle.pem"
    assert "target_session_attrs" not in params


def test_sqlite() -> None:
    """The sqlite engine gives Django's sqlite settings."""
    from preflight.django import database_config

    config = database_config(
        {"SQL_ENGINE": "django.db.backends.sqlite3", "SQL_DATABASE": "/data/db.sqlite3"}
    )
    assert config == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/data/db.sqlite3"}


def test_invalid_environment_raises_config_error() -> None:
    """An invalid environment raises ConfigError listing every problem."""
    from preflight import ConfigError
    from preflight.django import database_config

    with pytest.raises(ConfigError) as info:
        database_config({"SQL_PORT": "x"})
    assert len(info.value.problems) >= 4
