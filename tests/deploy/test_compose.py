"""The compose override, merged with a stand-in of balancer's docker-compose.yml.

``docker-compose config`` merges ``compose/docker-compose.preflight.yml`` with
the stand-in (tests/deploy/fixtures/balancer-main, written from balancer-main's
facts) exactly as ``docker compose -f docker-compose.yml -f
docker-compose.preflight.yml up`` would. The decisive test runs the preflight
with the merged environment of the preflight service against a real server
listening on port 5432 in a private network namespace where ``db`` resolves.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.netns import run_against
from tests.support import cli
from tests.support.ci import unavailable
from tests.support.k8s import MIGRATE_COMMAND
from tests.support.pg import APP_USER, VECTOR_STANDIN, ServerFactory

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
OVERRIDE = ROOT / "compose" / "docker-compose.preflight.yml"
STAND_IN = Path(__file__).resolve().parent / "fixtures" / "balancer-main"
COMPLETED = {"condition": "service_completed_successfully"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the stand-in with the override copied beside its docker-compose.yml."""
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose (Debian package) is not installed")
    directory = tmp_path_factory.mktemp("compose") / "balancer-main"
    shutil.copytree(STAND_IN, directory)
    shutil.copy(OVERRIDE, directory / OVERRIDE.name)
    return directory


def _config(project: Path, *files: str) -> dict[str, Any]:
    arguments = [a for f in files for a in ("-f", f)]
    done = subprocess.run(
        ["docker-compose", *arguments, "config"],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
    )
    return dict(yaml.safe_load(done.stdout))


@pytest.fixture(scope="module")
def alone(project: Path) -> dict[str, Any]:
    """balancer's compose file as it is."""
    return _config(project, "docker-compose.yml")


@pytest.fixture(scope="module")
def merged(project: Path) -> dict[str, Any]:
    """docker compose -f docker-compose.yml -f docker-compose.preflight.yml, merged."""
    return _config(project, "docker-compose.yml", OVERRIDE.name)


def test_preflight_is_on_app_net_with_backends_settings(merged: dict[str, Any]) -> None:
    """The preflight joins app_net and sees the same env file as backend."""
    services = merged["services"]
    preflight = services["preflight"]
    assert set(preflight["networks"]) == {"app_net"}
    backend_env = services["backend"]["environment"]
    assert {k: v for k, v in preflight["environment"].items() if k in backend_env} == backend_env
    assert preflight["environment"]["PREFLIGHT_REQUIRE_EXTENSIONS"] == "vector"
    assert preflight["depends_on"] == {"db": {"condition": "service_started"}}
    assert (preflight["user"], preflight["read_only"], preflight["cap_drop"]) == (
        "10001:10001",
        True,
        ["ALL"],
    )


def test_backend_waits_for_preflight_and_migrate(
    merged: dict[str, Any], alone: dict[str, Any]
) -> None:
    """backend keeps waiting for db healthy and now also for both one-shot services."""
    depends = merged["services"]["backend"]["depends_on"]
    assert depends == {
        **alone["services"]["backend"]["depends_on"],
        "preflight": COMPLETED,
        "migrate": COMPLETED,
    }
    assert depends["db"] == {"condition": "service_healthy"}


def test_migrate_runs_in_the_backend_image_after_the_preflight(merged: dict[str, Any]) -> None:
    """migrate: backend's image and build, env and code, after the preflight, on app_net."""
    services = merged["services"]
    migrate, backend = services["migrate"], services["backend"]
    for key in ("image", "build", "volumes"):
        assert migrate[key] == backend[key], key
    assert {k: v for k, v in migrate["environment"].items() if k in backend["environment"]} == (
        backend["environment"]
    )
    assert migrate["environment"]["DJANGO_SETTINGS_MODULE"] == "balancer_backend.settings"
    assert migrate["entrypoint"] == MIGRATE_COMMAND
    assert migrate["depends_on"] == {"preflight": COMPLETED}
    assert set(migrate["networks"]) == {"app_net"}


def test_everything_else_is_unchanged(merged: dict[str, Any], alone: dict[str, Any]) -> None:
    """db (pg15, the init SQL), the other services, networks and volumes stay as they are."""
    services = dict(merged["services"])
    assert set(services) == {*alone["services"], "preflight", "migrate"}
    for name, service in alone["services"].items():
        ignore = {"depends_on"} if name == "backend" else set()
        assert _comparable(services[name], ignore) == _comparable(service, ignore), name
    assert (merged["networks"], merged["volumes"]) == (alone["networks"], alone["volumes"])
    db = services["db"]
    assert db["image"] == "pgvector/pgvector:pg15"
    assert any(
        v.endswith(":/docker-entrypoint-initdb.d/init-vector-extension.sql:rw")
        for v in db["volumes"]
    )


def _comparable(service: dict[str, Any], ignore: set[str]) -> dict[str, Any]:
    """A service without ``ignore``d keys; volumes as a set (docker-compose 1 reorders them
    when it merges files)."""
    kept = {k: v for k, v in service.items() if k not in ignore}
    if "volumes" in kept:
        kept["volumes"] = sorted(kept["volumes"])
    return kept


def test_fixed_addresses_are_free_and_inside_app_net(merged: dict[str, Any]) -> None:
    """Every fixed address on app_net is distinct and inside balancer's subnet."""
    import ipaddress

    (pool,) = merged["networks"]["app_net"]["ipam"]["config"]
    subnet = ipaddress.ip_network(pool["subnet"])
    addresses = [s["networks"]["app_net"]["ipv4_address"] for s in merged["services"].values()]
    assert len(set(addresses)) == len(addresses) == len(merged["services"])
    assert all(ipaddress.ip_address(a) in subnet for a in addresses)


@pytest.mark.root
def test_preflight_service_environment_reaches_db(
    merged: dict[str, Any], make_server: ServerFactory, tmp_path: Path
) -> None:
    """The preflight, with the merged service's exact environment, exits 0 against `db`."""
    service_env = {k: str(v) for k, v in merged["services"]["preflight"]["environment"].items()}
    db_env = merged["services"]["db"]["environment"]
    server = make_server("compose", extensions=VECTOR_STANDIN)
    # What the db image does on first start: role, database, then the init SQL.
    with server.admin() as conn:
        conn.execute(f"ALTER ROLE {APP_USER} PASSWORD '{db_env['POSTGRES_PASSWORD']}'")
        conn.execute(f"CREATE DATABASE {db_env['POSTGRES_DB']} OWNER {db_env['POSTGRES_USER']}")
    init_sql = (STAND_IN / "db" / "init-vector-extension.sql").read_text()
    with server.admin(db_env["POSTGRES_DB"]) as conn:
        conn.execute(init_sql)
    env = {**cli.base_env(), **service_env}
    result = run_against(server, int(service_env["SQL_PORT"]), env, {"db": "127.0.0.1"}, tmp_path)
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["host"], plan["port"], plan["database"]) == (
        "internal",
        "db",
        5432,
        "balancer_dev",
    )
    # balancer's dev password is "balancer", its user name too: the user is withheld.
    assert plan["user"] != service_env["SQL_USER"]
    assert f'"{service_env["SQL_PASSWORD"]}"' not in result.stderr
    assert result.event("preflight.ready")["extensions"]["installed"] == ["vector"]


@pytest.mark.root
def test_preflight_where_db_does_not_resolve_fails_with_dns(
    merged: dict[str, Any], tmp_path: Path
) -> None:
    """Where `db` does not resolve (a service off app_net): dns (10), the hint names networks."""
    service_env = {k: str(v) for k, v in merged["services"]["preflight"]["environment"].items()}
    env = {**cli.base_env(), **service_env}
    result = cli.run(env, "--timeout", "2", hosts={}, workdir=tmp_path)
    assert result.code == 10, result.stderr
    failed = result.event("preflight.failed")
    assert failed["reason"] == "dns"
    assert "docker compose network" in failed["hint"]
