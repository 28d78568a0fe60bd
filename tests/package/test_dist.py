"""The sdist and the wheel a release publishes, built by ``python -m build`` and
installed as an app and as the check would install them (never the source tree)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import appvenv, cli, dist, scripts
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER

ROOT = dist.REPO
# What setuptools adds to an sdist beside the project's own files.
SDIST_METADATA = {"PKG-INFO", "setup.cfg"}
PSYCOPG3 = {"psycopg", "psycopg-binary", "psycopg-c", "psycopg-pool"}


def _release_check() -> ModuleType:
    return scripts.load("release_check")


VERSION = _release_check().project_version()


def _project_files() -> set[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return set(dist.project_files())


def _metadata(wheel: Path) -> Any:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"django_db_preflight-{VERSION}.dist-info/METADATA").decode()
    return Parser().parsestr(text)


def _twine(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


# --- what is built ---------------------------------------------------------------


def test_build_makes_this_versions_sdist_and_wheel(tmp_path: Path) -> None:
    """python -m build writes exactly the sdist and the pure wheel of pyproject's version."""
    built = dist.built()
    assert built.sdist.parent == built.wheel.parent
    assert _release_check().dist_problems(built.wheel.parent, VERSION) == []
    (tmp_path / "django_db_preflight-0.0.1.tar.gz").touch()
    assert _release_check().dist_problems(tmp_path, VERSION) != []


def test_twine_check_strict_passes() -> None:
    """twine check --strict accepts both files (the README renders as the long description)."""
    done = _twine(dist.built().sdist, dist.built().wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_twine_check_catches_a_missing_description(tmp_path: Path) -> None:
    """The twine check is not vacuous: a wheel whose METADATA lost its description fails."""
    wheel = dist.built().wheel
    broken = tmp_path / wheel.name
    name = f"django_db_preflight-{VERSION}.dist-info/METADATA"
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == name:
                headers = data.decode().split("\n\n", 1)[0]
                lines = [x for x in headers.splitlines() if "Description-Content-Type" not in x]
                data = ("\n".join(lines) + "\n\n").encode()
            target.writestr(item, data)
    done = _twine(broken)
    assert done.returncode != 0
    assert "long_description" in done.stdout + done.stderr


def test_sdist_is_the_project_as_git_sees_it() -> None:
    """The sdist holds every project file git knows (tests, docs, locks) and nothing it ignores."""
    files = _sdist_files(dist.built().sdist)
    assert files == _project_files()
    assert {"tests/conftest.py", "CHANGELOG.md", "docs/configuration.md"} <= files


def _sdist_files(sdist: Path) -> set[str]:
    """The project's files in ``sdist``, without what setuptools adds beside them."""
    prefix = f"django_db_preflight-{VERSION}/"
    with tarfile.open(sdist) as archive:
        members = [m.name for m in archive.getmembers() if m.isfile()]
    assert all(name.startswith(prefix) for name in members)
    files = {name[len(prefix) :] for name in members} - SDIST_METADATA
    return {name for name in files if not name.startswith("django_db_preflight.egg-info/")}


# Files a working tree gathers that git ignores and a release must not ship.
JUNK = (
    "tests/__pycache__/conftest.cpython-311.pyc",
    "tests/.hypothesis/examples/x",
    "tests/fixtures/djangoapp/build/lib/x.py",
    ".venv/bin/python",
    "dist/django_db_preflight-0.0.1.tar.gz",
    ".coverage.host.1",
    ".pytest_cache/v/cache/lastfailed",
)


def test_sdist_from_a_dirty_tree_leaves_out_what_git_ignores(tmp_path: Path) -> None:
    """Built in a tree with caches, venvs and old builds, the sdist still holds only the project."""
    source = dist.clean_copy(tmp_path / "source")
    for name in JUNK:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("junk\n")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path / "out"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (sdist,) = (tmp_path / "out").glob("*.tar.gz")
    assert _sdist_files(sdist) == _project_files()


def test_the_sdists_own_tests_run_from_it(tmp_path: Path) -> None:
    """Unpacked, the sdist imports its own package and its unit tests pass (docs included)."""
    with tarfile.open(dist.built().sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / f"django_db_preflight-{VERSION}"
    # Not measured by coverage (make test): these are the sdist's copies, in a temp dir.
    env = {k: v for k, v in _env().items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = str(unpacked)
    where = subprocess.run(
        [sys.executable, "-c", "import preflight; print(preflight.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=unpacked,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(unpacked)
    tests = ["test_hosts.py", "test_readme.py", "test_docs_links.py", "test_version.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [f"tests/unit/{name}" for name in tests],
        capture_output=True,
        text=True,
        check=False,
        cwd=unpacked,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert " passed" in done.stdout


def test_wheel_holds_the_package_and_nothing_else() -> None:
    """The wheel holds every module under preflight/ (subpackages too), py.typed and metadata."""
    with zipfile.ZipFile(dist.built().wheel) as archive:
        names = set(archive.namelist())
    info = f"django_db_preflight-{VERSION}.dist-info/"
    package = {name for name in names if not name.startswith(info)}
    tracked = {
        name
        for name in _project_files()
        if name.startswith("preflight/") and name.endswith((".py", "py.typed"))
    }
    assert package == tracked
    assert "preflight/py.typed" in package
    assert f"{info}entry_points.txt" in names


def test_wheel_metadata_needs_nothing_and_names_the_repository() -> None:
    """The base needs nothing, [check] brings its three, and the URLs name the repository."""
    metadata = _metadata(dist.built().wheel)
    assert metadata["Version"] == VERSION
    requires = metadata.get_all("Requires-Dist") or []
    assert [r for r in requires if "extra ==" not in r] == []
    check = sorted(r.split(";")[0].split(">=")[0] for r in requires if 'extra == "check"' in r)
    assert check == ["psycopg[binary]", "structlog", "tenacity"]
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls["Repository"] == "https://github.com/CodeForPhilly/django-db-preflight"
    assert all(url.startswith(urls["Repository"]) for url in urls.values())
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_wheel_ships_the_license_text() -> None:
    """MIT asks for its notice with every copy: the wheel carries LICENSE."""
    with zipfile.ZipFile(dist.built().wheel) as wheel:
        licenses = [name for name in wheel.namelist() if name.endswith("/licenses/LICENSE")]
        assert len(licenses) == 1
        assert "MIT License" in wheel.read(licenses[0]).decode()


# --- installed from the wheel ------------------------------------------------------


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {entry["name"].lower() for entry in json.loads(listed)}


def _env(**variables: str) -> dict[str, str]:
    """The CLI's environment without PYTHONPATH, so only the venv's install is importable."""
    env = cli.base_env(**variables)
    env.pop("PYTHONPATH", None)
    return env


def _in_venv(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, check=False, cwd=cwd, env=_env(**env)
    )


@pytest.mark.slow
def test_wheel_with_balancers_pins(tmp_path: Path) -> None:
    """With balancer's pins the wheel adds no psycopg 3; the helper, --help and --version work."""
    python = appvenv.fresh(tmp_path)
    _pip(python, *appvenv.BALANCER.requirements, str(dist.built().wheel))
    names = _installed(python)
    assert "django-db-preflight" in names
    assert not names & PSYCOPG3, names
    assert not names & {"tenacity", "structlog"}, names
    assert appvenv.driver_of(python, cwd=tmp_path, env=_env()) == "psycopg2"
    code = (
        "import json, preflight\n"
        "from preflight.django import database_config\n"
        "config = database_config({'SQL_HOST': 'shared-cluster-rw.cloudnative-pg.svc',"
        " 'SQL_DATABASE': 'balancer', 'SQL_USER': 'balancer'})\n"
        "print(json.dumps([preflight.__file__, preflight.__version__, config['HOST'],"
        " config['OPTIONS']]))\n"
    )
    done = _in_venv(python, tmp_path, "-c", code)
    assert done.returncode == 0, done.stderr
    where, version, host, options = json.loads(done.stdout)
    assert Path(where).is_relative_to(python.parent.parent)
    assert (version, host) == (VERSION, "shared-cluster-rw.cloudnative-pg.svc")
    assert options["sslmode"] == "prefer"
    helped = _in_venv(python, tmp_path, "-m", "preflight.django", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "migrate" in helped.stdout
    shown = _in_venv(python.parent / "preflight", tmp_path, "--version")
    assert (shown.returncode, shown.stdout.strip()) == (0, f"preflight {VERSION}")


@pytest.mark.slow
def test_wheel_with_the_check_extra_runs_a_real_check(plain_server: Any, tmp_path: Path) -> None:
    """WHEEL[check] brings the check's dependencies; its preflight checks a real server."""
    python = appvenv.fresh(tmp_path)
    locked = [
        line.split()[0]
        for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
        if "==" in line
    ]
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(locked) + "\n")
    _pip(python, "-c", str(constraints), f"{dist.built().wheel}[check]")
    assert {"psycopg", "psycopg-binary", "tenacity", "structlog"} <= _installed(python)
    preflight = python.parent / "preflight"
    shown = _in_venv(preflight, tmp_path, "--version")
    assert (shown.returncode, shown.stdout.strip()) == (0, f"preflight {VERSION}")
    env = {
        "SQL_HOST": plain_server.host,
        "SQL_PORT": str(plain_server.port),
        "SQL_DATABASE": APP_DB,
        "SQL_USER": APP_USER,
        "SQL_PASSWORD": APP_PASSWORD,
        "PREFLIGHT_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "PREFLIGHT_TIMEOUT": "30",
    }
    done = _in_venv(preflight, tmp_path, **env)
    assert done.returncode == 0, done.stderr
    events = cli.parse_events(done.stderr)
    assert events[-1]["event"] == "preflight.ready"
    cli.assert_no_secret(APP_PASSWORD, done.stdout, done.stderr)
    wrong = _in_venv(preflight, tmp_path, **{**env, "SQL_PASSWORD": "not-the-password"})
    assert wrong.returncode == 4, wrong.stderr


def _requirement_from_the_guide() -> str:
    """The fallback requirement line of docs/adopting-balancer.md, step 0."""
    guide = (ROOT / "docs" / "adopting-balancer.md").read_text()
    (line,) = [x for x in guide.splitlines() if x.startswith("django-db-preflight @ ")]
    return line


@pytest.mark.slow
def test_fallback_requirement_installs_by_url_and_hash_without_git(tmp_path: Path) -> None:
    """The guide's wheel URL with its hash installs without git; another hash is refused."""
    wheel = dist.built().wheel
    release = "https://github.com/CodeForPhilly/django-db-preflight/releases/download"
    line = _requirement_from_the_guide()
    url, _, placeholder = line.removeprefix("django-db-preflight @ ").partition("#sha256=")
    assert url == f"{release}/v{VERSION}/{wheel.name}"
    assert placeholder == "<the wheel's SHA-256>"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    local = line.replace(f"{release}/v{VERSION}/", wheel.parent.as_uri() + "/")
    python = appvenv.fresh(tmp_path)
    no_git = tmp_path / "empty-path"
    no_git.mkdir()
    outputs = []
    for hash_, code in (("0" * 64, 1), (digest, 0)):
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(local.replace(placeholder, hash_) + "\n")
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--no-deps", "-r", str(requirements)],
            capture_output=True,
            text=True,
            check=False,
            env={**_env(), "PATH": str(no_git)},
        )
        assert done.returncode == code, done.stdout + done.stderr
        outputs.append(done.stderr.upper())
    assert "DO NOT MATCH THE HASHES" in outputs[0]
    assert "django-db-preflight" in _installed(python)
