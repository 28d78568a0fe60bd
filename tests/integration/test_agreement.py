"""The app and the check agree: the agreement matrix of docs/check.md.

For each scenario, the APP (the test project in tests/fixtures/djangoapp, whose
settings use ``database_config()``) runs its real ``manage.py migrate`` in an
app venv, for every Django x driver cell (Django 4.2.3 / 5.2, psycopg2-binary
2.9.x with its bundled libpq / psycopg 3), and the preflight CLI runs from the
test venv with the very same environment.  In every cell the preflight's exit
code must match the app's success or failure, for the same reason: the app's
own error must say what the preflight's ``reason`` says.

Both run in a private mount namespace whose /etc/hosts maps the scenario's
host name (a CloudNativePG ``-rw`` service, an RDS endpoint) to 127.0.0.1.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import appvenv, cli, pg
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
    scenario: Scenario, server: pg.LocalServer, files: dict[str, Path]
) -> dict[str, str]:
    variables = {
        "SQL_HOST": scenario.host or server.host,
        "SQL_PORT": str(server.port),
        "SQL_DATABASE": pg.APP_DB,
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
    scenario: Scenario, server: pg.LocalServer, files: dict[str, Path], workdir: Path
) -> cli.Run:
    """The preflight CLI for ``scenario`` (once per scenario: it does not depend on the app)."""
    if scenario.name not in _preflight_runs:
        env = environment(scenario, server, files)
        env["PREFLIGHT_TERMINATION_LOG"] = str(workdir / "termination-log")
        command = isolated(cli.preflight_command(), scenario, workdir, files)
        _preflight_runs[scenario.name] = cli.run_command(command, env)
    return _preflight_runs[scenario.name]


@pytest.mark.root
@pytest.mark.parametrize("spec", appvenv.SPECS, ids=[spec.name for spec in appvenv.SPECS])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
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
    venv = appvenv.ready(spec)
    app_command = appvenv.app_command(venv, "manage.py", "migrate", "--noinput")
    app = subprocess.run(
        isolated(app_command, scenario, tmp_path, files),
        cwd=appvenv.DJANGOAPP,
        env=environment(scenario, server, files),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    app_output = app.stdout + app.stderr
    checked = preflight(scenario, server, files, tmp_path)
    cli.assert_no_secret(pg.APP_PASSWORD, checked.stdout, checked.stderr)

    assert (app.returncode == 0) == (checked.code == 0), (app_output, checked.stderr)
    assert checked.code == scenario.code, checked.stderr
    if scenario.reason is None:
        assert app.returncode == 0, app_output
        assert checked.event("preflight.ready")["tls"] is scenario.tls
    else:
        assert checked.event("preflight.failed")["reason"] == scenario.reason
        assert scenario.app_says is not None
        assert re.search(scenario.app_says, app_output), app_output


@pytest.mark.parametrize("spec", appvenv.SPECS, ids=[spec.name for spec in appvenv.SPECS])
def test_each_cell_runs_its_own_driver(spec: appvenv.Spec) -> None:
    """Django's backend in each app venv really uses the driver the cell is named for."""
    expected = "psycopg2" if spec.driver.startswith("psycopg2") else "psycopg"
    assert appvenv.driver_of(appvenv.ready(spec).python) == expected
