"""What ``database_config()`` gives, set beside what the app had before.

Two comparisons, each over a corpus, each rendered as a table in the docs by
``scripts/readme_tables.py`` (a drift test keeps the tables current):

- ``dj_database_url_rows``: ``dj_database_url.parse(url)`` against
  ``database_config({"DATABASE_URL": url})`` over :data:`URLS`;
- ``adoption_rows``: balancer's original settings block against
  ``database_config()`` over :data:`ENVIRONMENTS`.

A row lists only what differs; values the two express differently but libpq and
Django read alike are made equal first (:func:`_normal`), and what differs for every
URL is said once in :data:`ALWAYS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Config = dict[str, Any]
Outcome = Config | str  # the settings, or the error raised (its class name)

URLS: tuple[str, ...] = (
    "postgres://u:p@db:5432/app",
    "postgresql://u:p@db/app",
    "pgsql://u:p@db/app",
    "postgis://u:p@db/geo",
    "POSTGRES://u:p@db/app",
    "postgres://u:p%40ss@db/app",
    "postgres://u@db/app",
    "postgres://u:p@[::1]:5433/app",
    "postgres://u:p@127.0.0.1/app",
    "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/app",
    "postgres://u:p@/app?host=/var/run/postgresql",
    "postgres://u:p@db/d%2Fb",
    "postgres://u:p@db/app?sslmode=require",
    "postgres://u:p@db/app?sslmode=disable",
    "postgres://u:p@db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem",
    "postgres://u:p@db/app?sslmode=Require",
    "postgres://u:p@db.example.com/app?sslmode=prefer",
    "postgres://u:p@db/app?options=-c%20search_path%3Dmyschema",
    "postgres://u:p@db/app?currentSchema=myschema",
    "postgres://u:p@db/app?application_name=web",
    "postgres://u:p@db/app?connect_timeout=10",
    "postgres://u:p@db/app?sslcert=/c.crt&sslkey=/c.key&sslpassword=k",
    "postgres://u:p@db/app?target_session_attrs=read-write",
    "postgres://u:p@db/app?keepalives=1&keepalives_idle=30",
    "postgres://u:p@db/app?port=6432",
    "postgres://u:p@db/app?zz=1",
    "postgres://u:p@db/app?SSLMODE=require",
    "postgres://u:p@db/app?connect_timeout=abc",
    "postgres://u:p@db/app&sslmode=require",
    "postgres://u:p@db/app?isolation_level=3",
    "postgres://u:p@db/app?password=q",
    "postgres://u:p@db/app?dbname=other",
    "postgres://u:p@balancer-postgres-rw/app",
    "postgres://u:p@balancer-pooler-rw/app",
    "postgres://u:p@x.abc.eu-west-1.rds.amazonaws.com/app",
    "postgres://u:p@db/app#frag",
    "postgres://u:p@ss@db/app",
    "postgres://u:pa/ss@db/app",
    "postgres://u:p@h1,h2/app",
    "postgres://u:p@db:0/app",
    "postgres://u:p@db:99999/app",
    "postgres://db/app",
    "postgres://u:p@/app",
    "postgres://u:p@db",
    "postgres://u:p%00@db/app",
    "mysql://u:p@db/app",
    "sqlite://:memory:",
    "sqlite://",
    "sqlite:///db.sqlite3",
    "sqlite:////var/lib/app/db.sqlite3",
    "sqlite:///file:x?mode=memory&cache=shared",
)

ALWAYS: tuple[tuple[str, str], ...] = (
    (
        "`OPTIONS` of every PostgreSQL URL",
        "gains the plan's `sslmode` (unless the URL gives one), `gssencmode=disable` and, "
        "for a CloudNativePG `-rw` service, `target_session_attrs=read-write`",
    ),
    (
        "`PORT`",
        "always a string, `5432` when the URL has none (dj-database-url: an int, or `''`)",
    ),
    (
        "`OPTIONS` values",
        "stay strings, as libpq takes them (dj-database-url makes `10` an int and `true` a bool)",
    ),
    (
        "`CONN_MAX_AGE`, `CONN_HEALTH_CHECKS`, `DISABLE_SERVER_SIDE_CURSORS`",
        "present only when not Django's default (dj-database-url always sets all three)",
    ),
)

DEFAULTS = {"CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "DISABLE_SERVER_SIDE_CURSORS": False}
PLANNED = ("sslmode", "gssencmode", "target_session_attrs")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _normal(config: Config, given: Mapping[str, object] | None = None) -> dict[str, str]:
    """``config`` flattened (``OPTIONS.x``), values as text, Django's defaults dropped;
    the plan's own OPTIONS dropped unless ``given`` (the URL's query) has them."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if key == "OPTIONS":
            for name, option in dict(value).items():
                if name in PLANNED and given is not None and name not in given:
                    continue
                flat[f"OPTIONS.{name}"] = _text(option)
        elif DEFAULTS.get(key, object()) != value:
            flat[key] = _text(value)
    flat = {k: v for k, v in flat.items() if v not in ("", "None")}  # unset
    if "postgis" in flat.get("ENGINE", "") or "postgresql" in flat.get("ENGINE", ""):
        flat.setdefault("PORT", "5432")  # libpq's default
    return flat


def _shown(outcome: Outcome, keys: list[str]) -> str:
    if isinstance(outcome, str):
        return f"refused ({outcome})"
    return ", ".join(f"`{k}={outcome[k]!r}`" if k in outcome else f"no `{k}`" for k in keys)


def difference(reference: Outcome, ours: Outcome) -> tuple[str, str] | None:
    """The two sides of a difference, as table cells, or None when they agree."""
    if isinstance(reference, str) and isinstance(ours, str):
        return None
    if isinstance(reference, str) or isinstance(ours, str):
        taken = ours if isinstance(reference, str) else reference
        assert not isinstance(taken, str)
        keys = sorted(k for k in taken if k not in ("ENGINE", "PORT"))  # the settings it took
        return _shown(reference, keys), _shown(ours, keys)
    keys = sorted(k for k in reference.keys() | ours.keys() if reference.get(k) != ours.get(k))
    if not keys:
        return None
    return _shown(reference, keys), _shown(ours, keys)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _outcome(make: Callable[[], Config], given: Mapping[str, object] | None) -> Outcome:
    try:
        return _normal(make(), given)
    except Exception as exc:
        return type(exc).__name__


def _query(url: str) -> dict[str, object]:
    from urllib.parse import parse_qs, urlsplit

    return dict(parse_qs(urlsplit(url).query))


def dj_database_url_outcomes(url: str) -> tuple[Outcome, Outcome]:
    """(dj-database-url's settings, database_config()'s) for ``url``."""
    import dj_database_url

    from preflight.django import database_config

    given = _query(url)
    reference = _outcome(lambda: dict(dj_database_url.parse(url)), given)
    ours = _outcome(lambda: database_config({"DATABASE_URL": url}), given)
    return reference, ours


REASONS: dict[str, str] = {
    "postgres://u:p@/app?host=/var/run/postgresql": "libpq's `host` parameter is the host "
    "(here a socket directory), as libpq reads it",
    "postgres://u:p@db/app?sslmode=Require": "one sslmode parser for the URL and `SQL_SSL_MODE`; "
    "libpq itself refuses `Require`",
    "postgres://u:p@db/app?port=6432": "libpq's `port` parameter is the port",
    "postgres://u:p@db/app?zz=1": "not a libpq parameter (libpq would refuse it): left out, "
    "with a warning",
    "postgres://u:p@db/app?SSLMODE=require": "a libpq name in another case, which libpq "
    "refuses: refused, as leaving it out would weaken the sslmode",
    "postgres://u:p@db/app?connect_timeout=abc": "not a whole number, which libpq refuses at "
    "connection time: refused at import, naming the parameter",
    "postgres://u:p@db/app&sslmode=require": "the `?` forgotten: refused, not taken for a "
    "database name",
    "postgres://u:p@db/app?isolation_level=3": "Django's own OPTIONS (`isolation_level`, "
    "`server_side_binding`, `assume_role`) are not read from the URL: set them in settings.py",
    "postgres://u:p@db/app?password=q": "the password given twice: refused, not guessed",
    "postgres://u:p@db/app?dbname=other": "the database name given twice: refused, not guessed",
    "postgres://u:p@balancer-pooler-rw/app": "a pooler host: transaction pooling breaks "
    "server-side cursors (pass `disable_server_side_cursors=False` to keep them)",
    "postgres://u:p@db/app#frag": "libpq keeps a `#` and Django's URL parsers cut it off: "
    "refused, not guessed",
    "postgres://u:p@ss@db/app": "an unencoded `@` in the password: libpq and urllib split it "
    "differently",
    "postgres://u:p@h1,h2/app": "several hosts: the check tests exactly one",
    "postgres://u:p@db:0/app": "0 is not a port",
    "postgres://db/app": "no user name: refused at import, naming the missing part",
    "postgres://u:p@/app": "no host: refused at import, naming the missing part",
    "postgres://u:p@db": "no database name: refused at import, naming the missing part",
    "postgres://u:p%00@db/app": "`%00` in the password, which libpq refuses",
    "mysql://u:p@db/app": "neither PostgreSQL nor SQLite",
    "sqlite:///file:x?mode=memory&cache=shared": "a `file:` URI is kept whole, with "
    "`OPTIONS.uri`, which SQLite needs to read it as a URI",
}
"""Why ``database_config()`` differs from dj-database-url, for each URL where it does."""


def dj_database_url_table() -> list[str]:
    """The docs' table: every difference from dj-database-url over :data:`URLS`."""
    rows = ["| URL | dj-database-url | `database_config()` | why |", "|---|---|---|---|"]
    same = 0
    for url in URLS:
        found = difference(*dj_database_url_outcomes(url))
        if found is None:
            same += 1
            continue
        rows.append(_row([f"`{url}`", *found, REASONS.get(url, "")]))
    rows += ["", "| for every URL | `database_config()` |", "|---|---|"]
    rows += [_row(list(always)) for always in ALWAYS]
    rows += ["", f"The other {same} of the {len(URLS)} URLs give the same settings."]
    return rows


# --- balancer's original settings block ---------------------------------------------

BASE_DIR = Path("/usr/src/app")
ORIGIN = "CodeForPhilly/balancer-main, server/balancer_backend/settings.py"


def balancer_original(environ: Mapping[str, str]) -> Config:
    """What balancer's settings block before adoption made of ``environ`` (its rules,
    restated: each default, the CloudNativePG guess and the SSL choice of ``ORIGIN``)."""
    host = environ.get("SQL_HOST", "localhost")
    in_cluster = (
        ".svc.cluster.local" in host
        or not ("." in host and len(host.split(".")) > 2)
        or host.count(".") <= 1
    )
    config: Config = {
        "ENGINE": environ.get("SQL_ENGINE", "django.db.backends.sqlite3"),
        "NAME": environ.get("SQL_DATABASE", BASE_DIR / "db.sqlite3"),
        "USER": environ.get("SQL_USER", "user"),
        "PASSWORD": environ.get("SQL_PASSWORD", "password"),
        "HOST": host,
        "PORT": environ.get("SQL_PORT", "5432"),
    }
    if config["ENGINE"] == "django.db.backends.postgresql":
        mode = environ.get("SQL_SSL_MODE")
        if mode:
            config["OPTIONS"] = {"sslmode": mode}
        elif not in_cluster:
            config["OPTIONS"] = {"sslmode": "require"}
    return config


PG = "django.db.backends.postgresql"
COMPOSE = {
    "SQL_ENGINE": PG,
    "SQL_HOST": "db",
    "SQL_PORT": "5432",
    "SQL_DATABASE": "balancer_dev",
    "SQL_USER": "balancer",
    "SQL_PASSWORD": "balancer",
}
# cfp-sandbox-cluster's ConfigMap (balancer/app/balancer.env) plus its sealed password.
SANDBOX_ROW = "sandbox: CloudNativePG `-rw`"
SANDBOX = {
    **COMPOSE,
    "SQL_HOST": "shared-cluster-rw.cloudnative-pg.svc.cluster.local",
    "SQL_DATABASE": "balancer",
}
RDS_ROW = "an RDS endpoint (example name; live's real `SQL_HOST` is sealed)"
ENVIRONMENTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("compose (`config/env/dev.env`)", COMPOSE),
    (SANDBOX_ROW, SANDBOX),
    ("CloudNativePG `-rw`, short name", {**COMPOSE, "SQL_HOST": "balancer-postgres-rw"}),
    ("CloudNativePG `-ro`", {**COMPOSE, "SQL_HOST": "balancer-postgres-ro"}),
    ("CloudNativePG Pooler", {**COMPOSE, "SQL_HOST": "balancer-pooler-rw"}),
    (
        RDS_ROW,
        {**COMPOSE, "SQL_HOST": "mydb.abc123xyz.us-east-1.rds.amazonaws.com"},
    ),
    ("an external host", {**COMPOSE, "SQL_HOST": "db.example.com"}),
    ("`127.0.0.1`", {**COMPOSE, "SQL_HOST": "127.0.0.1"}),
    ("`localhost`", {**COMPOSE, "SQL_HOST": "localhost"}),
    ("an outside IP address", {**COMPOSE, "SQL_HOST": "10.20.30.40"}),
    ("`SQL_SSL_MODE=disable`", {**COMPOSE, "SQL_SSL_MODE": "disable"}),
    ("`SQL_SSL_MODE=Require`", {**COMPOSE, "SQL_SSL_MODE": "Require"}),
    (
        "RDS with `SQL_SSL_MODE=verify-full`",
        {
            **COMPOSE,
            "SQL_HOST": "mydb.abc123xyz.us-east-1.rds.amazonaws.com",
            "SQL_SSL_MODE": "verify-full",
        },
    ),
    ("`SQL_SSL_ROOT_CERT` set", {**COMPOSE, "SQL_SSL_ROOT_CERT": "/etc/ca/ca.crt"}),
    ("`SQL_PORT` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_PORT"}),
    ("`SQL_USER` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_USER"}),
    ("`SQL_PASSWORD` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_PASSWORD"}),
    ("`SQL_DATABASE` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_DATABASE"}),
    ("`SQL_HOST` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_HOST"}),
    ("`SQL_ENGINE` unset", {k: v for k, v in COMPOSE.items() if k != "SQL_ENGINE"}),
    ("nothing set (an image build)", {}),
    ("SQLite asked for", {"SQL_ENGINE": "django.db.backends.sqlite3"}),
    (
        "`SQL_PORT=tcp://…` (a Service named `sql`)",
        {**COMPOSE, "SQL_PORT": "tcp://10.96.0.12:5432"},
    ),
    ("`SQL_HOST=db:5432`", {**COMPOSE, "SQL_HOST": "db:5432"}),
)


ADOPTION_ALWAYS: tuple[tuple[str, str], ...] = (
    (
        "`OPTIONS.gssencmode`",
        "`disable` for every PostgreSQL environment: GSSAPI encryption never silently replaces TLS",
    ),
    (
        "no `OPTIONS.sslmode` before",
        "shown as `prefer`, libpq's own default (`PGSSLMODE` aside, which the preflight "
        "warns about)",
    ),
)


def _adopted(config: Config) -> Config:
    config = dict(config)
    options = {k: v for k, v in dict(config.get("OPTIONS", {})).items() if k != "gssencmode"}
    if options:
        config["OPTIONS"] = options
    else:
        config.pop("OPTIONS", None)
    return config


def _before(environ: Mapping[str, str]) -> Config:
    config = balancer_original(environ)
    if config["ENGINE"] == PG:
        config["OPTIONS"] = {"sslmode": "prefer", **config.get("OPTIONS", {})}
    return config


def adoption_outcomes(environ: dict[str, str]) -> tuple[Outcome, Outcome]:
    """(balancer's original block's settings, database_config()'s) for ``environ``."""
    from preflight.django import database_config

    before = _outcome(lambda: _before(environ), None)
    after = _outcome(lambda: _adopted(database_config(environ, base_dir=BASE_DIR)), None)
    return before, after


def adoption_table() -> list[str]:
    """The adoption guide's table: what changes for the app, environment by environment."""
    rows = [
        "| environment | balancer's block | `database_config()` |",
        "|---|---|---|",
    ]
    same = []
    for name, environ in ENVIRONMENTS:
        found = difference(*adoption_outcomes(environ))
        if found is None:
            same.append(name)
            continue
        rows.append(_row([name, *found]))
    rows += ["", "| for every environment | |", "|---|---|"]
    rows += [_row(list(always)) for always in ADOPTION_ALWAYS]
    rows += ["", f"No change for: {', '.join(same)}."]
    return rows
