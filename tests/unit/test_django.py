"""The Django helper, checked against Django's real PostgreSQL backend."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.support import djangodb
from tests.unit.test_cli_redaction import PASSWORDS
from tests.unit.test_redact import survives

PASSWORD = "Django-Qw3'@:/%pw"


@pytest.fixture(scope="module")
def django_setup() -> None:
    djangodb.configure()


def connection_params(config: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = djangodb.postgresql(config).get_connection_params()
    return params


def test_import_needs_neither_django_nor_psycopg() -> None:
    """Importing the helper pulls in neither Django nor psycopg."""
    import subprocess

    code = (
        "import sys, preflight.django; "
        "loaded = {m.split('.')[0] for m in sys.modules}; "
        "assert not loaded & {'psycopg', 'psycopg2', 'django', 'structlog', 'tenacity'}, loaded"
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
    assert params["sslmode"] == "prefer"
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


def test_sqlite_name_is_anchored_to_base_dir(tmp_path: Any) -> None:
    """A relative SQLite name (default db.sqlite3) lives under base_dir, not the working dir."""
    from preflight.django import database_config

    sqlite = {"SQL_ENGINE": "django.db.backends.sqlite3"}
    assert database_config(sqlite, base_dir=tmp_path)["NAME"] == str(tmp_path / "db.sqlite3")
    named = database_config({**sqlite, "SQL_DATABASE": "app.db"}, base_dir=tmp_path)
    assert named["NAME"] == str(tmp_path / "app.db")


def test_invalid_environment_raises_improperly_configured() -> None:
    """Invalid values raise Django's ImproperlyConfigured naming every variable at fault."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    with pytest.raises(ImproperlyConfigured) as info:
        database_config({"SQL_PORT": "x", "SQL_SSL_MODE": "nope"})
    message = str(info.value)
    for variable in ("SQL_PORT", "SQL_SSL_MODE", "SQL_HOST", "SQL_DATABASE", "SQL_USER"):
        assert variable in message


def test_empty_environment_does_not_raise() -> None:
    """No database variable at all (an image build): no error until a connection is made."""
    from preflight.django import database_config

    config = database_config({})
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == ""


@pytest.mark.usefixtures("django_setup")
def test_empty_environment_fails_with_djangos_own_error_on_connect() -> None:
    """Django's own ImproperlyConfigured names the missing NAME when it connects."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    with pytest.raises(ImproperlyConfigured, match="NAME"):
        connection_params(database_config({}))


def test_preflight_variables_never_reach_the_app() -> None:
    """An invalid PREFLIGHT_* value in a shared env file does not stop the app."""
    from preflight.django import database_config

    env = {"SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u", "PREFLIGHT_TIMEOUT": "abc"}
    assert database_config(env)["HOST"] == "db"


@pytest.mark.usefixtures("django_setup")
def test_system_resolves_to_the_os_bundle(tmp_path: Any) -> None:
    """SQL_SSL_ROOT_CERT=system reaches the driver as a file path with verify-full (libpq 15
    does not know `system`)."""
    from preflight.django import database_config

    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    config = database_config(
        {
            "SQL_HOST": "app.c1.eu-west-1.rds.amazonaws.com",
            "SQL_DATABASE": "balancer",
            "SQL_USER": "balancer",
            "SQL_SSL_ROOT_CERT": "system",
            "SSL_CERT_FILE": str(bundle),
        }
    )
    params = connection_params(config)
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(bundle))


@pytest.mark.parametrize(
    ("env", "sslmode"),
    [
        ({"SQL_HOST": "db", "SQL_USER": "balancer", "SQL_DATABASE": "balancer_dev"}, "prefer"),
        (
            {
                "SQL_HOST": "shared-cluster-rw.cloudnative-pg.svc.cluster.local",
                "SQL_USER": "balancer",
                "SQL_DATABASE": "balancer",
            },
            "prefer",
        ),
        (
            {"SQL_HOST": "b.c1.us-east-1.rds.amazonaws.com", "SQL_USER": "u", "SQL_DATABASE": "d"},
            "require",
        ),
        (
            {
                "SQL_HOST": "b.c1.us-east-1.rds.amazonaws.com",
                "SQL_USER": "u",
                "SQL_DATABASE": "d",
                "SQL_SSL_MODE": "verify-full",
                "SQL_SSL_ROOT_CERT": "/etc/ssl/rds/global-bundle.pem",
            },
            "verify-full",
        ),
    ],
)
def test_balancer_environments(env: dict[str, str], sslmode: str) -> None:
    """balancer's own environments (dev, sandbox, RDS) get the documented sslmode."""
    from preflight.django import database_config

    assert database_config(env)["OPTIONS"]["sslmode"] == sslmode


def test_only_options_libpq_15_knows() -> None:
    """OPTIONS never holds a parameter libpq 15 (psycopg2-binary 2.9.6) would reject."""
    from preflight.django import database_config

    known_to_libpq_15 = {"sslmode", "gssencmode", "sslrootcert", "target_session_attrs"}
    env = {
        "SQL_HOST": "balancer-postgres-rw",
        "SQL_DATABASE": "d",
        "SQL_USER": "u",
        "SQL_SSL_ROOT_CERT": "/ca.crt",
    }
    assert set(database_config(env)["OPTIONS"]) <= known_to_libpq_15


# --- the dj-database-url superset -------------------------------------------------

URL = "postgres://app:pw@db/app"


@pytest.mark.usefixtures("django_setup")
def test_url_parameters_reach_djangos_driver() -> None:
    """options, application_name and the client certificate reach the connection
    parameters Django hands the driver."""
    from preflight.django import database_config

    url = URL + "?options=-c%20search_path%3Dapp&application_name=web&sslcert=/c&sslkey=/k"
    params = connection_params(database_config({"DATABASE_URL": url}))
    assert (params["options"], params["application_name"]) == ("-c search_path=app", "web")
    assert (params["sslcert"], params["sslkey"]) == ("/c", "/k")


@pytest.mark.parametrize(
    ("kwargs", "keys"),
    [
        ({}, {}),
        ({"conn_max_age": 600}, {"CONN_MAX_AGE": 600}),
        ({"conn_max_age": None}, {"CONN_MAX_AGE": None}),
        ({"conn_health_checks": True}, {"CONN_HEALTH_CHECKS": True}),
    ],
)
def test_connection_keywords_as_dj_database_url_names_them(
    kwargs: dict[str, Any], keys: dict[str, Any]
) -> None:
    """conn_max_age and conn_health_checks become Django's keys (left out at the default)."""
    from preflight.django import database_config

    config = database_config({"DATABASE_URL": URL}, **kwargs)
    assert {k: config[k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS") if k in config} == keys


@pytest.mark.usefixtures("django_setup")
def test_pool_reaches_options_and_django_accepts_it() -> None:
    """pool=True (Django 5.1+, psycopg 3) is OPTIONS["pool"], which Django takes out of the
    driver's parameters itself."""
    from preflight.django import database_config

    config = database_config({"DATABASE_URL": URL}, pool={"min_size": 2})
    assert config["OPTIONS"]["pool"] == {"min_size": 2}
    assert "pool" not in connection_params(config)


@pytest.mark.usefixtures("django_setup")
def test_a_pool_without_psycopg_pool_is_refused_at_import_as_django_would_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg 3 without psycopg_pool: refused at import, where Django's own backend refuses
    the same OPTIONS only at the first connection."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    accepted = database_config({"DATABASE_URL": URL}, pool=True)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="Error loading psycopg_pool"):
        djangodb.postgresql(accepted).pool  # noqa: B018 - Django loads psycopg_pool here
    with pytest.raises(ImproperlyConfigured, match="pool: needs psycopg_pool"):
        database_config({"DATABASE_URL": URL}, pool=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool": True, "conn_max_age": 60}, "pool: cannot be used with a non-zero conn_max_age"),
        ({"pool": True, "conn_max_age": None}, "pool: cannot be used with a non-zero"),
        ({"conn_max_age": -1}, "conn_max_age: must be None or a whole number"),
    ],
)
def test_keyword_mistakes_are_refused_at_import(kwargs: dict[str, Any], message: str) -> None:
    """A pool with persistent connections is refused as Django would, but at import."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    with pytest.raises(ImproperlyConfigured, match=message):
        database_config({"DATABASE_URL": URL}, **kwargs)


@pytest.mark.parametrize(
    ("host", "kwargs", "disabled"),
    [
        ("balancer-pooler-rw", {}, True),
        ("balancer-pooler-rw.prod.svc", {"disable_server_side_cursors": False}, False),
        ("balancer-postgres-rw", {}, False),
        ("db", {"disable_server_side_cursors": True}, True),
    ],
)
def test_server_side_cursors_off_behind_a_pooler(
    host: str, kwargs: dict[str, Any], disabled: bool
) -> None:
    """A pooler host gets DISABLE_SERVER_SIDE_CURSORS (transaction pooling breaks them),
    unless the caller decides."""
    from preflight.django import database_config

    config = database_config({"DATABASE_URL": f"postgres://u:p@{host}/app"}, **kwargs)
    assert config.get("DISABLE_SERVER_SIDE_CURSORS", False) is disabled


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("postgres://u:p@db/app", "django.db.backends.postgresql"),
        ("pgsql://u:p@db/app", "django.db.backends.postgresql"),
        ("postgis://u:p@db/app", "django.contrib.gis.db.backends.postgis"),
    ],
)
def test_schemes_choose_the_engine(url: str, engine: str) -> None:
    """postgres, postgresql and pgsql are PostgreSQL; postgis is the GIS engine."""
    from preflight.django import database_config

    assert database_config({"DATABASE_URL": url})["ENGINE"] == engine


def test_sql_engine_may_name_the_gis_engine() -> None:
    """SQL_ENGINE=...postgis is PostgreSQL for the check and the GIS engine for the app."""
    from preflight.django import database_config

    gis = "django.contrib.gis.db.backends.postgis"
    env = {"SQL_ENGINE": gis, "SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"}
    assert database_config(env)["ENGINE"] == gis


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca", "require", "disable"])
@pytest.mark.parametrize("host", ["db", "x.rds.amazonaws.com", "db.example.com"])
def test_an_explicit_sslmode_is_never_weakened(mode: str, host: str) -> None:
    """The URL's sslmode reaches OPTIONS as written, whatever the host."""
    from preflight.django import database_config

    config = database_config({"DATABASE_URL": f"postgres://u:p@{host}/app?sslmode={mode}"})
    assert config["OPTIONS"]["sslmode"] == mode


def test_a_service_link_is_one_clear_error() -> None:
    """SQL_PORT=tcp://IP:PORT at import: ImproperlyConfigured naming service links."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    env = {"SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"}
    with pytest.raises(ImproperlyConfigured) as info:
        database_config({**env, "SQL_PORT": "tcp://10.96.0.12:5432", "SQL_SERVICE_HOST": "x"})
    assert "Kubernetes service link" in str(info.value)
    assert "enableServiceLinks: false" in str(info.value)


@pytest.mark.usefixtures("django_setup")
@pytest.mark.parametrize(
    "env",
    [
        {"SQL_ENGINE": "django.db.backends.sqlite3", "SQL_DATABASE": ":memory:"},
        {"DATABASE_URL": "sqlite://:memory:"},
        {"DATABASE_URL": "sqlite://"},
        {"DATABASE_URL": "sqlite:///file:shared-x?mode=memory&cache=shared"},
        {"SQL_ENGINE": "django.db.backends.sqlite3", "SQL_DATABASE": "file:y?mode=memory"},
    ],
)
def test_sqlite_in_memory_stays_in_memory(
    env: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:memory: and file: URIs reach Django's real SQLite backend as they are: it connects,
    and no file appears under base_dir or the working directory."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from preflight.django import database_config

    monkeypatch.chdir(tmp_path)
    config = database_config(env, base_dir=tmp_path)
    wrapper = DatabaseWrapper(djangodb.settings_dict(config), alias="memory")
    with wrapper.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x int)")
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone() == (0,)
    wrapper.close()
    assert list(tmp_path.iterdir()) == []


# Where a careless operator pastes the password: each makes a problem that quotes the value.
PASTED_INTO = st.sampled_from(["SQL_PORT", "SQL_SSL_MODE", "SQL_HOST", "SQL_CONNECTION_TYPE"])


@settings(max_examples=60, deadline=None)
@given(password=PASSWORDS, variable=PASTED_INTO, url=st.booleans())
def test_the_import_error_never_shows_the_password(password: str, variable: str, url: bool) -> None:
    """A password pasted into another variable is withheld from ImproperlyConfigured (and
    ConfigError): settings.py's import traceback lands in the app's log."""
    assume("\x00" not in password and password.strip() and password.isprintable())
    env = {"SQL_HOST": "db", "SQL_DATABASE": "app", "SQL_USER": "app", variable: password}
    if url:
        env["DATABASE_URL"] = f"postgres://app:{quote(password, safe='')}@db/app"
    else:
        env["SQL_PASSWORD"] = password
    baseline = {**env, variable: "Qq7-neutral-placeholder-9"}
    if not url:
        baseline["SQL_PASSWORD"] = "Qq7-neutral-9"
    assume(not survives(_import_error(baseline), password))
    message = _import_error(env)
    assume(message)  # a password that is also a valid value there: nothing refused
    assert variable in message or "DATABASE_URL" in message
    assert not survives(message, password)


def _import_error(env: dict[str, str]) -> str:
    """The ImproperlyConfigured message ``database_config`` raises for ``env``, or ''."""
    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    try:
        database_config(env)
    except ImproperlyConfigured as error:
        return str(error)
    return ""
