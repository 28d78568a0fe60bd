"""Virtual environments that stand for the APP's image: a given Django and driver.

The tests run the app's own code (``manage.py migrate``, ``python -m
preflight.django migrate``) with the exact driver the app would have, never the
test venv's.  Each venv is built once and cached under
``/var/tmp/preflight-appvenvs`` (``PREFLIGHT_APPVENV_CACHE`` overrides), keyed
by its requirements, this Python's version and the checkout; a file lock makes parallel
builds wait for each other.  The preflight package is installed into it without
dependencies, once per test session, from the wheel a release would publish
(``tests/support/dist.py``, built once), so the venv has only what the app
itself would install.

pip runs with its normal configuration (this machine's mirrors).  A venv that
cannot be built raises: in CI that fails the run rather than skipping a cell.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from tests.support import dist

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PREFLIGHT_APPVENV_CACHE", "/var/tmp/preflight-appvenvs"))
# The small Django project the app venvs run (settings use database_config()).
DJANGOAPP = REPO / "tests" / "fixtures" / "djangoapp"


class Spec(NamedTuple):
    """One app environment: a short name for test ids and its requirements."""

    name: str
    django: str
    driver: str

    @property
    def requirements(self) -> tuple[str, str]:
        return (self.django, self.driver)

    @property
    def key(self) -> str:
        """Cache key: the requirements, the interpreter's version and the checkout.

        Each session installs its checkout's preflight into the venv, so two
        checkouts (git worktrees) sharing one venv would run each other's code."""
        text = "\n".join([*self.requirements, sys.version.split()[0], str(REPO)])
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# balancer's exact pins (server/requirements.txt): Django 4.2.3, psycopg2-binary
# 2.9.6 (which bundles libpq 15); the same Django with psycopg 3; and Django
# 5.2 LTS with each driver.
BALANCER = Spec("dj42-psycopg2", "Django==4.2.3", "psycopg2-binary==2.9.6")
SPECS: tuple[Spec, ...] = (
    BALANCER,
    Spec("dj52-psycopg2", "Django==5.2.19", "psycopg2-binary==2.9.13"),
    Spec("dj42-psycopg3", "Django==4.2.3", "psycopg[binary]==3.3.9"),
    Spec("dj52-psycopg3", "Django==5.2.19", "psycopg[binary]==3.3.9"),
)


class AppVenv(NamedTuple):
    """A built venv: its directory and its interpreter."""

    spec: Spec
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def build(spec: Spec) -> AppVenv:
    """The cached venv for ``spec``, built if missing (raises when pip fails)."""
    path = CACHE / spec.key
    done_marker = path / ".complete"
    with _locked(CACHE / f"{spec.key}.lock"):
        if not done_marker.exists():
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
            _pip(path / "bin" / "python", "install", "--quiet", *spec.requirements)
            done_marker.write_text("\n".join(spec.requirements) + "\n")
    return AppVenv(spec, path)


def with_preflight(venv: AppVenv, wheel: Path) -> AppVenv:
    """Install the package from ``wheel`` into ``venv`` without its dependencies."""
    with _locked(CACHE / f"{venv.spec.key}.lock"):
        _pip(venv.python, "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel))
    return venv


@functools.cache
def ready(spec: Spec) -> AppVenv:
    """The venv for ``spec`` with the built wheel's preflight in it (once per process)."""
    return with_preflight(build(spec), dist.built().wheel)


def test_venv() -> AppVenv:
    """The test venv itself as an app venv: Django 5.2 + psycopg 3 (the dev lock), this
    checkout installed editable.  Runs there are measured by coverage (``make test``)."""
    from importlib.metadata import version

    spec = Spec("dj52-psycopg3", f"Django=={version('django')}", f"psycopg=={version('psycopg')}")
    return AppVenv(spec, Path(sys.prefix))


def app_command(venv: AppVenv, *args: str) -> list[str]:
    """``python ARGS`` in the app venv (run it with ``cwd=DJANGOAPP``)."""
    return [str(venv.python), *args]


def fresh(parent: Path) -> Path:
    """A new, empty venv under ``parent`` (not cached); returns its interpreter."""
    path = Path(tempfile.mkdtemp(prefix="venv-", dir=parent))
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def driver_of(python: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Which driver module Django's PostgreSQL backend uses in that interpreter."""
    code = (
        "from django.db.backends.postgresql import base; "
        "print(getattr(base, 'is_psycopg3', False) and 'psycopg' or 'psycopg2')"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, cwd=cwd, env=env
    )
    return done.stdout.strip()
