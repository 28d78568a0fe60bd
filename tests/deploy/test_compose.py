"""docker compose: the file validates, and the preflight service's environment works.

The decisive test runs the preflight with exactly the environment that
``docker-compose config`` gives the preflight service (SQL_HOST=db,
SQL_PORT=5432) against a real server listening on port 5432 in a private
network namespace where ``db`` resolves, as it would on the compose network.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ServerFactory, need_root, unavailable
from tests.support import cli
from tests.support.pg import APP_USER, VECTOR_STANDIN

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose (Debian package) is not installed")
    done = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(yaml.safe_load(done.stdout))


def test_app_waits_for_the_preflight_to_complete(config: dict[str, Any]) -> None:
    """The app depends on the preflight with service_completed_successfully."""
    services = config["services"]
    assert services["app"]["depends_on"] == {
        "preflight": {"condition": "service_completed_successfully"}
    }
    assert services["preflight"]["build"]["context"] == str(ROOT)
    assert services["preflight"]["user"] == "10001:10001"
    assert services["preflight"]["read_only"] is True


def test_preflight_and_app_read_the_same_settings(config: dict[str, Any]) -> None:
    """Both services see the same SQL_* values, and the database matches them."""
    services = config["services"]
    sql = {k: v for k, v in services["app"]["environment"].items() if k.startswith("SQL_")}
    assert sql == {
        k: v for k, v in services["preflight"]["environment"].items() if k.startswith("SQL_")
    }
    db = services["db"]["environment"]
    assert (db["POSTGRES_DB"], db["POSTGRES_USER"], db["POSTGRES_PASSWORD"]) == (
        sql["SQL_DATABASE"],
        sql["SQL_USER"],
        sql["SQL_PASSWORD"],
    )
    assert "pgvector" in services["db"]["image"]


def test_preflight_service_environment_reaches_db(
    config: dict[str, Any], make_server: ServerFactory, tmp_path: Path
) -> None:
    """The preflight, with the compose service's exact environment, exits 0."""
    need_root()
    service_env = {k: str(v) for k, v in config["services"]["preflight"]["environment"].items()}
    server = make_server("compose", extensions=VECTOR_STANDIN)
    with server.admin() as conn:
        conn.execute(f"ALTER ROLE {APP_USER} PASSWORD '{service_env['SQL_PASSWORD']}'")
    server.stop()

    steps = ["ip link set lo up", server.extension_mount() or "true"]
    start = server.server_command(
        "start", "-w", "-o", f"-p {service_env['SQL_PORT']} -c listen_addresses=127.0.0.1"
    )
    stop = server.server_command("stop", "-w", "-m", "immediate")
    steps.append(shlex.join(start))
    script = " && ".join(steps) + f'; "$@"; rc=$?; {shlex.join(stop)}; exit $rc'
    inner = cli.isolated(cli.preflight_command(), {"db": "127.0.0.1"}, tmp_path)
    command = cli.unshare(script, inner, "--net")
    env = {**cli.base_env(), **service_env}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    events = cli.parse_events(done.stderr)
    assert done.returncode == 0, done.stderr
    assert events[-1]["event"] == "preflight.ready"
    plan = events[0]
    assert (plan["kind"], plan["host"], plan["port"], plan["sslmode"]) == (
        "internal",
        "db",
        5432,
        "disable",
    )
    assert events[-1]["extensions"]["available_creatable"] == ["vector"]
    assert service_env["SQL_PASSWORD"] not in done.stderr
