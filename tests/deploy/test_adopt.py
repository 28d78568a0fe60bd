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
        _block("python", 0)
        + "from pathlib import Path\nBASE_DIR = Path('/usr/src/app')\n"  # settings.py has it
        + _block("python", 1)
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
    "SQL_HOST": "mydb.abc123xyz.us-east-1.rds.amazonaws.com",
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
    stdout, calls = _run_entrypoint(tmp_path, _block("sh", 1))
    assert calls == [
        "python manage.py migrate",
        "python manage.py createsu",
        "python manage.py populatedb",
    ]
    assert stdout == "runserver|0.0.0.0:8000|"


def test_step6_entrypoint_neither_waits_nor_migrates(tmp_path: Path) -> None:
    """Step 6's entrypoint calls neither nc nor python and runs the given command."""
    stdout, calls = _run_entrypoint(tmp_path, _block("sh", 3))
    assert calls == []
    assert stdout == "runserver|0.0.0.0:8000|"


def test_step5_ca_copy_takes_only_the_certificate() -> None:
    """The CA copy takes ca.crt alone and makes the ConfigMap the component mounts."""
    commands = _block("sh", 2)
    deployment = k8s.find(k8s.render("sandbox-verify-ca"), "Deployment", "balancer")
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == "shared-cluster-ca"
    assert volume["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert "get secret shared-cluster-ca" in commands
    assert "{.data.ca\\.crt}" in commands
    assert "ca.key" not in commands
    assert "create configmap shared-cluster-ca --from-file=ca.crt" in commands


@pytest.mark.parametrize("ending", ["anthropic", "anthropic\n"])
def test_step1_the_requirement_survives_a_file_without_a_final_newline(
    tmp_path: Path, ending: str
) -> None:
    """The guide's append gives the pinned requirement step 1 names its own line whether or
    not the file ends in a newline (balancer's does not), and leaves the last one intact."""
    server = tmp_path / "server"
    server.mkdir()
    requirements = server / "requirements.txt"
    requirements.write_text("Django==4.2.3\npsycopg2-binary==2.9.6\n" + ending)
    subprocess.run(["sh", "-c", _block("sh", 0)], cwd=tmp_path, check=True)
    lines = [line for line in requirements.read_text().splitlines() if line.strip()]
    assert lines == ["Django==4.2.3", "psycopg2-binary==2.9.6", "anthropic", _block("text").strip()]


# A stand-in of balancer's settings.py: its imports, BASE_DIR, and the database block the
# guide replaces (between the comment and the DATABASES dict), in balancer's shape.
SETTINGS_STAND_IN = '''"""Stand-in for balancer_backend/settings.py."""

from pathlib import Path
from datetime import timedelta
import os

BASE_DIR = Path(__file__).resolve().parent.parent
SIMPLE_JWT = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=60)}

# Database

# Detect connection type based on SQL_HOST
SQL_HOST = os.environ.get("SQL_HOST", "localhost")
db_config = {"ENGINE": os.environ.get("SQL_ENGINE", "django.db.backends.sqlite3")}

DATABASES = {
    "default": db_config,
}

EMAIL_PORT = 587
'''


def _apply_step2(text: str) -> str:
    """The guide's step 2 done as it says: the import after the last top-level import,
    the block from the comment through DATABASES' closing brace replaced."""
    lines = text.splitlines(keepends=True)
    last_import = max(i for i, line in enumerate(lines) if line.startswith(("import ", "from ")))
    lines.insert(last_import + 1, _block("python", 0))
    text = "".join(lines)
    start = text.index("# Detect connection type based on SQL_HOST")
    end = text.index('    "default": db_config,\n}\n') + len('    "default": db_config,\n}\n')
    return text[:start] + _block("python", 1) + text[end:]


def test_step2_the_import_goes_at_the_top(tmp_path: Path) -> None:
    """Step 2 on a stand-in settings file: ruff finds no import below code (E402), and the
    file gives DATABASES from database_config()."""
    settings = tmp_path / "balancer_backend" / "settings.py"
    settings.parent.mkdir()
    settings.write_text(_apply_step2(SETTINGS_STAND_IN))
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "check", "--isolated", "--select", "E402", str(settings)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    code = (
        f"import runpy; s = runpy.run_path({str(settings)!r}); "
        "print(s['DATABASES']['default']['HOST'])"
    )
    env = {**cli.base_env(), "SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "db"


MIGRATE_FIRST_ERROR = (
    "test operation does not apply: is missing path: /spec/template/spec/initContainers/0/name"
)


def test_step5_migrate_listed_before_db_preflight_fails_as_the_guide_says(
    tmp_path: Path,
) -> None:
    """components: [migrate, db-preflight] stops kustomize with the error the guide quotes
    and explains; the right order renders."""
    assert MIGRATE_FIRST_ERROR in " ".join(GUIDE.split())
    base = os.path.relpath(ROOT / "k8s", tmp_path)

    def kustomize(*components: str) -> subprocess.CompletedProcess[str]:
        listed = "".join(f"  - {base}/components/{name}\n" for name in components)
        (tmp_path / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - {base}/balancer/sandbox\ncomponents:\n{listed}"
        )
        return subprocess.run(
            ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
        )

    wrong = kustomize("migrate", "db-preflight")
    assert wrong.returncode != 0
    assert MIGRATE_FIRST_ERROR in wrong.stderr
    assert kustomize("db-preflight", "migrate").returncode == 0


def test_every_compose_up_rebuilds_the_backend_image() -> None:
    """Each page's `up` with the override says --build: `migrate` runs in balancer's locally
    built image, which without a rebuild lacks step 1's requirement (step 4's reason)."""
    command = "docker compose -f docker-compose.yml -f docker-compose.preflight.yml up"
    pages = ["README.md", "docs/deployment.md", "docs/adopting-balancer.md"]
    texts = {page: (ROOT / page).read_text() for page in pages}
    texts["compose/docker-compose.preflight.yml"] = (
        ROOT / "compose" / "docker-compose.preflight.yml"
    ).read_text()
    pattern = re.escape(command) + r"[^\n`]*"
    found = {page: re.findall(pattern, text) for page, text in texts.items()}
    assert all(found.values()), found
    assert {page: ups for page, ups in found.items() if any("--build" not in u for u in ups)} == {}


@pytest.mark.parametrize("cluster", ["sandbox", "live"])
def test_step5_names_the_app_tag_each_cluster_pins(cluster: str) -> None:
    """The tags the guide says migrate would run are the ones the cluster stand-ins pin."""
    docs = k8s.documents(k8s.kustomize(k8s.K8S / "balancer" / cluster))
    (app,) = k8s.find(docs, "Deployment", "balancer")["spec"]["template"]["spec"]["containers"]
    tag = app["image"].rsplit(":", 1)[1]
    owner = "the live cluster's" if cluster == "live" else "the sandbox's"
    assert f"{owner} `{tag}`" in " ".join(GUIDE.split())


def test_an_app_image_without_the_package_fails_migrate_as_the_guide_says(tmp_path: Path) -> None:
    """In a Python without step 1's package, `python -m preflight.django migrate` fails with
    the error the guide quotes."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-m", "preflight.django", "migrate"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )
    quoted = re.search(r"fails the init\s+container with `([^`]+)`", GUIDE)
    assert quoted is not None
    assert done.returncode == 1
    assert quoted.group(1) in done.stderr, done.stderr
