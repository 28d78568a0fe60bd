"""Real-world inputs: Kubernetes service links, the cluster domain, URL schemes and
parameters as settings, bare yes/no flags."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from preflight._cli import main
from preflight._cluster import cluster_domain, search_domain, service_links
from preflight._config import load
from preflight._hosts import Kind

BASE = {"SQL_HOST": "db", "SQL_DATABASE": "app", "SQL_USER": "app", "SQL_PASSWORD": "pw-1"}
# What a Service named `sql` injects into every pod of its namespace.
LINK_ADDRESS = "10.96.0.12"
SERVICE_LINK = {
    **dict.fromkeys(
        ["SQL_SERVICE_PORT", "SQL_SERVICE_PORT_POSTGRES", "SQL_PORT_5432_TCP_PORT"], "5432"
    ),
    **dict.fromkeys(["SQL_SERVICE_HOST", "SQL_PORT_5432_TCP_ADDR"], LINK_ADDRESS),
    **dict.fromkeys(["SQL_PORT", "SQL_PORT_5432_TCP"], f"tcp://{LINK_ADDRESS}:5432"),
    "SQL_PORT_5432_TCP_PROTO": "tcp",
}


def explain(env: dict[str, str], *args: str) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args], environ=env)
    document: dict[str, object] = json.loads(out.getvalue())
    return code, document


def test_a_service_link_port_is_one_problem_that_names_service_links() -> None:
    """SQL_PORT=tcp://IP:PORT: one problem saying what it is and what to do, no noise."""
    config = load({**BASE, **SERVICE_LINK})
    (problem,) = config.problems
    assert problem.variable == "SQL_PORT"
    assert "Kubernetes service link" in problem.message
    assert "a Service named sql" in problem.message
    assert "enableServiceLinks: false" in problem.message
    assert config.warnings == ()


def test_service_link_variables_beside_a_set_port_are_one_warning() -> None:
    """With SQL_PORT set, the injected variables give one warning, not one per variable."""
    config = load({**BASE, **SERVICE_LINK, "SQL_PORT": "5432"})
    assert config.problems == ()
    (warning,) = config.warnings
    assert "service link" in warning
    assert "SQL_SERVICE_HOST" in warning
    assert "is not a variable the preflight knows" not in warning


def test_service_links_of_other_services_are_left_alone() -> None:
    """Only the Service named after the prefix counts; SQL_PORT_X is a typo, warned as such."""
    env = {"SQL_PORT_X": "1", "SQLX_SERVICE_HOST": "10.0.0.1", "SQL_SERVICE_HOSTS": "x"}
    assert service_links(env, "SQL") == []
    assert len(load({**BASE, **env}).warnings) == 2  # SQL_PORT_X, SQL_SERVICE_HOSTS


def links_of(service: str, address: str = "10.96.0.20") -> dict[str, str]:
    """What a Service named ``service`` (port 5432) injects into every pod."""
    prefix = service.upper().replace("-", "_")
    return {
        f"{prefix}_SERVICE_HOST": address,
        f"{prefix}_SERVICE_PORT": "5432",
        f"{prefix}_SERVICE_PORT_POSTGRES": "5432",
        f"{prefix}_PORT": f"tcp://{address}:5432",
        f"{prefix}_PORT_5432_TCP": f"tcp://{address}:5432",
        f"{prefix}_PORT_5432_TCP_PROTO": "tcp",
        f"{prefix}_PORT_5432_TCP_PORT": "5432",
        f"{prefix}_PORT_5432_TCP_ADDR": address,
    }


@pytest.mark.parametrize(
    "services",
    [
        ["sql-rw", "sql-ro", "sql-r"],  # a CloudNativePG Cluster named sql
        ["sql-pooler-rw"],
        ["preflight", "preflight-metrics"],
        ["sql-proxy"],
    ],
)
def test_other_services_links_under_our_prefixes_are_not_noise(services: list[str]) -> None:
    """Services named sql-* or preflight-* inject SQL_*/PREFLIGHT_* links: no warning each."""
    env = {**BASE}
    for service in services:
        env.update(links_of(service))
    config = load(env)
    assert config.problems == ()
    assert config.warnings == ()


def test_a_service_link_port_beside_database_url_is_one_warning() -> None:
    """With DATABASE_URL the source, an injected SQL_PORT is ignored with the link warning."""
    config = load({"DATABASE_URL": "postgres://app:pw-1@db:6432/app", **SERVICE_LINK})
    assert config.problems == ()
    (warning,) = config.warnings
    assert "service link" in warning
    assert "SQL_PORT" in warning
    assert config.settings.port == 6432
    from preflight.django import database_config

    assert database_config({"DATABASE_URL": "postgres://app:pw-1@db:6432/app", **SERVICE_LINK})[
        "PORT"
    ] == ("6432")


@pytest.mark.parametrize(
    ("resolv", "domain"),
    [
        ("search prod.svc.cluster.local svc.cluster.local cluster.local\n", "cluster.local"),
        (
            "nameserver 10.96.0.10\nsearch app.svc.corp.example svc.corp.example corp.example\n"
            "options ndots:5\n",
            "corp.example",
        ),
        (
            "search a.svc.old.example svc.old.example\nsearch b.svc.new.example svc.new.example\n",
            "new.example",
        ),
        ("search SVC.Corp.Example.\n", "corp.example"),
        ("search example.com\n", None),
        ("search svc.\n", None),
        ("search svc..\n", None),
        ("search ns.svc.corp. svc.corp. corp.\n", "corp"),
        ("", None),
    ],
)
def test_search_domain(resolv: str, domain: str | None) -> None:
    """The cluster domain is the svc.<domain> entry of the last search line."""
    assert search_domain(resolv) == domain


def test_cluster_domain_sources(tmp_path: Path) -> None:
    """SQL_CLUSTER_DOMAIN wins; in a pod resolv.conf says; elsewhere cluster.local."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search ns.svc.corp.example svc.corp.example corp.example\n")
    pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert cluster_domain(pod, str(resolv)) == "corp.example"
    assert cluster_domain({}, str(resolv)) == "cluster.local"
    assert cluster_domain({**pod, "SQL_CLUSTER_DOMAIN": "Other.Example."}, str(resolv)) == (
        "other.example"
    )
    assert cluster_domain(pod, str(tmp_path / "missing")) == "cluster.local"


def test_cluster_domain_override_classifies() -> None:
    """SQL_CLUSTER_DOMAIN makes name.ns.svc.<domain> in-cluster; a bad value is a problem."""
    env = {**BASE, "SQL_HOST": "pg-rw.prod.svc.corp.example", "SQL_CLUSTER_DOMAIN": "corp.example"}
    config = load(env)
    assert config.plan is not None
    assert (config.plan.kind, config.plan.ssl.mode) == (Kind.CLOUDNATIVEPG, "prefer")
    for wrong in ("not a domain", ".", "corp.example.."):  # one final dot only, as for hosts
        bad = load({**env, "SQL_CLUSTER_DOMAIN": wrong})
        assert [p.variable for p in bad.problems] == ["SQL_CLUSTER_DOMAIN"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:p@h/db", "the scheme: mysql:// is not one of"),
        ("postgres://u:p@/db", "has no host; give it after '@'"),
        ("postgres://u:p@h", "has no database name; give it as the path"),
        ("postgres://:p@h/db", "has no user name; give it before '@'"),
    ],
)
def test_url_problems_name_the_url_not_sql_variables(url: str, problem: str) -> None:
    """A URL's fault is DATABASE_URL's, never SQL_HOST/SQL_DATABASE/SQL_USER's."""
    config = load({"DATABASE_URL": url})
    assert [p.variable for p in config.problems] == ["DATABASE_URL"]
    assert problem in config.problems[0].message


def test_url_sslmode_and_sql_ssl_mode_parse_alike() -> None:
    """sslmode=Require in the URL is read as SQL_SSL_MODE=Require is: require."""
    from_url = load({"DATABASE_URL": "postgres://u:p@h/db?sslmode=Require"})
    from_sql = load({**BASE, "SQL_HOST": "h", "SQL_SSL_MODE": "Require"})
    assert from_url.problems == from_sql.problems == ()
    assert from_url.settings.sslmode == from_sql.settings.sslmode == "require"


@pytest.mark.parametrize(
    ("env", "database"),
    [
        ({"DATABASE_URL": "sqlite://:memory:"}, ":memory:"),
        ({"DATABASE_URL": "sqlite://"}, ":memory:"),
        ({"DATABASE_URL": "sqlite:////srv/app/db.sqlite3"}, "/srv/app/db.sqlite3"),
        ({"DATABASE_URL": "sqlite:///file:x?mode=memory"}, "file:x?mode=memory"),
        ({"SQL_ENGINE": "django.db.backends.sqlite3", "SQL_DATABASE": ":memory:"}, ":memory:"),
    ],
)
def test_sqlite_inputs(env: dict[str, str], database: str) -> None:
    """SQLite from a URL or SQL_*: no problem, no plan, the name as given."""
    config = load(env)
    assert (config.problems, config.plan) == ((), None)
    assert (config.settings.engine, config.settings.database) == ("sqlite", database)


def test_postgis_is_the_same_server() -> None:
    """postgis:// plans a check like postgres:// and marks the GIS engine."""
    config = load({"DATABASE_URL": "postgis://u:p@db/geo"})
    assert config.problems == ()
    assert config.plan is not None
    assert config.settings.gis


def test_url_parameters_reach_the_plan() -> None:
    """Every libpq parameter of the URL is among the plan's parameters, and wins over the
    plan's own target_session_attrs."""
    url = (
        "postgres://u:p@pg-rw/db?options=-c%20search_path%3Dapp&application_name=web"
        "&sslcert=/c.crt&sslkey=/c.key&target_session_attrs=any"
    )
    config = load({"DATABASE_URL": url})
    assert config.plan is not None
    params = config.plan.libpq_params()
    assert params["options"] == "-c search_path=app"
    assert (params["application_name"], params["sslcert"], params["sslkey"]) == (
        "web",
        "/c.crt",
        "/c.key",
    )
    assert params["target_session_attrs"] == "any"


@pytest.mark.parametrize(
    ("args", "create", "retry"),
    [
        (["explain", "--create-extensions"], True, False),
        (["--create-extensions", "explain"], True, False),
        (["--create-extensions", "--retry-auth", "explain"], True, True),
        (["explain", "--create-extensions", "false", "--retry-auth", "yes"], False, True),
        (["explain", "--create-extensions=no"], False, False),
    ],
)
def test_yes_no_flags_work_bare_and_with_a_value(
    args: list[str], create: bool, retry: bool
) -> None:
    """--create-extensions and --retry-auth alone mean true; a yes/no value after them is read."""
    code, document = explain(BASE, *args)
    assert code == 0
    preflight = document["preflight"]
    assert isinstance(preflight, dict)
    assert (preflight["create_extensions"], preflight["retry_auth"]) == (create, retry)


# --- bad input: a clear error, never a traceback ---------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from preflight._url import LIBPQ_PARAMETERS  # noqa: E402

URL_PARTS = st.tuples(
    st.sampled_from(["postgres://", "pgsql://", "postgis://", "sqlite://", "sqlite:///", "x://"]),
    st.text(max_size=12),
    st.sampled_from(["", "@db", "@db:5432", "@[::1]", "@h1,h2", "@", "@db:x"]),
    st.sampled_from(["", "/app", "/:memory:", "/file:x?mode=memory", "/a%00"]),
    st.lists(
        st.tuples(
            st.sampled_from([*sorted(LIBPQ_PARAMETERS), "sslmode", "currentSchema", "port", "zz"]),
            st.text(max_size=8),
        ),
        max_size=4,
    ),
)


@settings(max_examples=300, deadline=None)
@given(parts=URL_PARTS, link=st.booleans())
def test_any_url_is_settings_or_a_clear_error(
    parts: tuple[str, str, str, str, list[tuple[str, str]]], link: bool
) -> None:
    """Whatever the URL (any scheme, any parameter, a service link beside it), load() never
    raises, and database_config() raises ImproperlyConfigured exactly when the check
    finds a problem."""
    from urllib.parse import quote

    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    scheme, userinfo, host, path, params = parts
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    env = {"DATABASE_URL": f"{scheme}{quote(userinfo, safe=':')}{host}{path}?{query}"}
    if link:
        env["SQL_PORT"] = "tcp://10.96.0.12:5432"
    env = {k: v for k, v in env.items() if "\x00" not in v}
    config = load(env)
    assert all(p.variable and p.message for p in config.problems)
    if config.problems:  # the check and the app refuse the same environments
        with pytest.raises(ImproperlyConfigured, match=r"^database settings: "):
            database_config(env)
    else:
        assert database_config(env)["ENGINE"]


@pytest.mark.parametrize(
    ("query", "timeout", "name"),
    [
        ("", "5", "preflight"),
        ("?connect_timeout=3&application_name=web", "3", "web"),
        ("?connect_timeout=30", "5", "preflight"),
        ("?connect_timeout=0", "5", "preflight"),
    ],
)
def test_the_check_connects_with_the_urls_parameters(query: str, timeout: str, name: str) -> None:
    """The check's connection string carries the URL's application_name; the URL's
    connect_timeout only shortens the check's per-attempt timeout (default 5)."""
    from psycopg.conninfo import conninfo_to_dict

    from preflight._deadline import Deadline
    from preflight._probe import _conninfo

    config = load({"DATABASE_URL": "postgres://u:p@db/app" + query})
    assert config.plan is not None
    params = conninfo_to_dict(_conninfo(config.plan, Deadline(60), 5, None, False))
    assert (params["connect_timeout"], params["application_name"]) == (timeout, name)


@pytest.mark.parametrize(
    ("psycopg", "django", "message"),
    [
        (False, "5.2.1", "pool: needs psycopg 3"),
        (True, "4.2.3", "pool: needs Django 5.1 or later (this is 4.2)"),
    ],
)
def test_a_pool_needs_psycopg_3_and_django_5_1(
    monkeypatch: pytest.MonkeyPatch, psycopg: bool, django: str, message: str
) -> None:
    """pool=True where Django could not honour it is refused at import, saying what is
    missing (found without importing psycopg or Django's backends)."""
    import importlib.metadata
    import importlib.util

    from django.core.exceptions import ImproperlyConfigured

    from preflight.django import database_config

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "psycopg" and not psycopg else find_spec(name, *a),
    )
    monkeypatch.setattr(importlib.metadata, "version", lambda name: django)
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        database_config({"DATABASE_URL": "postgres://u:p@db/app"}, pool=True)


@pytest.mark.parametrize(
    ("env", "variable", "phrase"),
    [
        (
            {
                "DATABASE_URL": "postgres://u:p@db.example.com/app?sslmode=require&sslrootcert=system"
            },
            "DATABASE_URL",
            "sslmode=require with sslrootcert=system",
        ),
        (
            {**BASE, "SQL_SSL_MODE": "require", "SQL_SSL_ROOT_CERT": "system"},
            "SQL_SSL_MODE",
            "SQL_SSL_MODE=require with SQL_SSL_ROOT_CERT=system",
        ),
    ],
)
def test_ssl_problems_name_where_the_setting_came_from(
    env: dict[str, str], variable: str, phrase: str
) -> None:
    """An SSL combination no server can satisfy is filed under DATABASE_URL, in the URL's
    words, when the URL gave it; under SQL_SSL_MODE when the variables did."""
    (problem,) = load(env).problems
    assert (problem.variable, phrase in problem.message) == (variable, True)


def test_ssl_warnings_use_the_urls_words() -> None:
    """A weak sslmode from the URL for an outside host warns as sslmode=, not SQL_SSL_MODE=."""
    config = load({"DATABASE_URL": "postgres://u:p@db.example.com/app?sslmode=disable"})
    assert config.plan is not None
    assert any(w.startswith("sslmode=disable for an external host") for w in config.plan.warnings)


def test_explain_shows_the_urls_own_target_session_attrs() -> None:
    """``-rw`` host with ``target_session_attrs=any`` in the URL: the connection uses the
    URL's value, and the plan (what explain shows) says the same, not read-write."""
    config = load({"DATABASE_URL": "postgres://u:p@db-rw/app?target_session_attrs=any"})
    assert config.plan is not None
    assert config.plan.libpq_params()["target_session_attrs"] == "any"
    assert config.plan.target_session_attrs == "any"
