"""The "Adopt in balancer" guide: the steps that run without Docker or a cluster.

Steps 4 and 5 (the compose override, the components in the cluster repos) are
tested in test_compose.py and test_k8s.py; this file covers steps 1 to 3 with
the exact snippets docs/adopting-balancer.md gives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import cli, k8s

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "adopting-balancer.md").read_text()
GUIDE = PAGE[PAGE.index("## The changes") :]  # steps 1 to 6 (step 0 publishes)


def _block(language: str, index: int = 0) -> str:
    """The ``index``-th fenced block of ``language`` in the guide, dedented."""
    blocks = re.findall(rf"^( *)```{language}\n(.*?)^\1```", GUIDE, re.MULTILINE | re.DOTALL)
    indent, body = blocks[index]
    return "".join(line[len(indent) :] + "\n" for line in body.splitlines())


def test_step1_requirement_is_the_base_distribution_without_dependencies() -> None:
    """The requirements line pins this version of the distribution, which needs nothing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "django-db-preflight"
    assert _block("text").strip() == f"{project['name']}=={project['version']}"
    assert project["dependencies"] == []


def test_step1_django_helper_imports_without_the_checks_dependencies() -> None:
    """preflight.django imports with psycopg, tenacity and structlog unavailable."""
    code = (
        "import sys\n"
        "for name in ('psycopg', 'psycopg_binary', 'tenacity', 'structlog'):\n"
        "    sys.modules[name] = None\n"
        "from preflight.django import database_config\n"
        "print(database_config({'SQL_HOST': 'db', 'SQL_DATABASE': 'd', 'SQL_USER': 'u'})['HOST'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "db"


def _settings_from_readme(environ: dict[str, str]) -> dict[str, object]:
    """Run the guide's settings snippet with ``environ``; return DATABASES["default"]."""
    code = (
        "from pathlib import Path\nBASE_DIR = Path('/usr/src/app')\n"  # settings.py has it
        + _block("python")
        + "import json\nprint(json.dumps(DATABASES['default']))\n"
    )
    env = {**cli.base_env(), **environ}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return dict(json.loads(done.stdout))


def _explain(environ: dict[str, str]) -> dict[str, object]:
    result = cli.run(cli.base_env(**environ), "explain", json_stderr=False)
    assert result.code == 0, result.stderr
    return dict(json.loads(result.stdout))


def _sandbox_env() -> dict[str, str]:
    configmap = k8s.find(k8s.render("sandbox"), "ConfigMap", "balancer-config")
    return {**configmap["data"], "SQL_PASSWORD": "from-the-sealed-secret"}


def _compose_env() -> dict[str, str]:
    path = Path(__file__).resolve().parent / "fixtures/balancer-main/config/env/dev.env"
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


LIVE_ENV = {
    "SQL_ENGINE": "django.db.backends.postgresql",
    "SQL_HOST": "database-1.c9a0wokccvp3.us-east-1.rds.amazonaws.com",
    "SQL_PORT": "5432",
    "SQL_DATABASE": "balancer",
    "SQL_USER": "balancer",
    "SQL_PASSWORD": "from-the-sealed-secret",
}


@pytest.mark.parametrize("settings", [_sandbox_env, _compose_env, lambda: LIVE_ENV])
def test_step2_settings_connect_as_the_preflight_checks(settings: object) -> None:
    """The guide's DATABASES block gives the app the preflight's host, role and SSL mode."""
    assert callable(settings)
    environ = {k: v for k, v in settings().items() if k.startswith("SQL_")}
    database = _settings_from_readme(environ)
    # explain withholds a user name equal to the password (compose: "balancer"),
    # so explain gets another password here.
    plan = _explain({**environ, "SQL_PASSWORD": "a-password-no-name-contains"})
    assert (database["HOST"], database["PORT"], database["NAME"], database["USER"]) == (
        plan["host"],
        str(plan["port"]),
        plan["database"],
        plan["user"],
    )
    assert database["PASSWORD"] == environ["SQL_PASSWORD"]
    options = database["OPTIONS"]
    assert isinstance(options, dict)
    assert options["sslmode"] == plan["sslmode"]


def test_step2_sqlite_needs_the_engine_set() -> None:
    """No SQL_ENGINE means PostgreSQL with nothing set; SQLite must be asked for."""
    assert _settings_from_readme({"SQL_ENGINE": "django.db.backends.sqlite3"}) == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "/usr/src/app/db.sqlite3",
    }
    unset = _settings_from_readme({})
    assert (unset["ENGINE"], unset["HOST"], unset["NAME"]) == (
        "django.db.backends.postgresql",
        "",
        "",
    )


def _run_entrypoint(tmp_path: Path, script_text: str) -> tuple[str, list[str]]:
    """Run an entrypoint with ``nc`` and ``python`` recorders; (stdout, recorded calls)."""
    script = tmp_path / "entrypoint.prod.sh"
    script.write_text(script_text)
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("nc", "python"):
        recorder = bin_dir / tool
        recorder.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        recorder.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "SQL_ENGINE": "django.db.backends.postgresql",
        "SQL_HOST": "db",
        "SQL_PORT": "5432",
    }
    done = subprocess.run(
        ["sh", str(script), "printf", "%s|", "runserver", "0.0.0.0:8000"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=30,
    )
    return done.stdout, calls.read_text().splitlines() if calls.exists() else []


def test_step3_entrypoint_no_longer_waits_on_a_port(tmp_path: Path) -> None:
    """Step 3's entrypoint: no nc, the three commands in order, then the given command."""
    stdout, calls = _run_entrypoint(tmp_path, _block("sh", 0))
    assert calls == [
        "python manage.py migrate",
        "python manage.py createsu",
        "python manage.py populatedb",
    ]
    assert stdout == "runserver|0.0.0.0:8000|"


def test_step6_entrypoint_neither_waits_nor_migrates(tmp_path: Path) -> None:
    """Step 6's entrypoint calls neither nc nor python and runs the given command."""
    stdout, calls = _run_entrypoint(tmp_path, _block("sh", 2))
    assert calls == []
    assert stdout == "runserver|0.0.0.0:8000|"


def test_step5_ca_copy_takes_only_the_certificate() -> None:
    """The CA copy takes ca.crt alone and makes the ConfigMap the component mounts."""
    commands = _block("sh", 1)
    deployment = k8s.find(k8s.render("sandbox-verify-ca"), "Deployment", "balancer")
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == "shared-cluster-ca"
    assert volume["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert "get secret shared-cluster-ca" in commands
    assert "{.data.ca\\.crt}" in commands
    assert "ca.key" not in commands
    assert "create configmap shared-cluster-ca --from-file=ca.crt" in commands
