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
    """One app environment: a short name for test ids, its requirements and its Python.

    ``python`` is ``host`` (the interpreter running the tests, 3.11 here) or
    ``trixie`` (Debian trixie's 3.13 in the trixie root: Django 6.0 needs 3.12+).
    """

    name: str
    django: str
    driver: str
    python: str = "host"

    @property
    def requirements(self) -> tuple[str, str]:
        return (self.django, self.driver)

    @property
    def key(self) -> str:
        """Cache key: the requirements, where the interpreter comes from, and the checkout.

        Each session installs its checkout's preflight into the venv, so two
        checkouts (git worktrees) sharing one venv would run each other's code."""
        interpreter = sys.version.split()[0] if self.python == "host" else self.python
        text = "\n".join([*self.requirements, *APP_EXTRAS, interpreter, str(REPO)])
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    @property
    def version(self) -> str:
        """``Django 4.2.3 + psycopg2-binary 2.9.6``, for the docs."""
        return f"{_spelled(self.django)} + {_spelled(self.driver)}"


def _spelled(requirement: str) -> str:
    name, version = requirement.split("==")
    return f"{name.replace('[binary]', '')} {version}"


# What every app venv has besides Django and its driver: balancer's models use
# pgvector's Django field (its migration 0005_embeddings adds a vector(384) column).
APP_EXTRAS = ("pgvector==0.5.1",)


# balancer's exact pins (server/requirements.txt): Django 4.2.3, psycopg2-binary
# 2.9.6 (which bundles libpq 15); the same Django with psycopg 3; Django 5.2 LTS
# and Django 6.0 (on Python 3.13, in the trixie root) with each driver.
BALANCER = Spec("dj42-psycopg2", "Django==4.2.3", "psycopg2-binary==2.9.6")
SPECS: tuple[Spec, ...] = (
    BALANCER,
    Spec("dj52-psycopg2", "Django==5.2.19", "psycopg2-binary==2.9.13"),
    Spec("dj42-psycopg3", "Django==4.2.3", "psycopg[binary]==3.3.9"),
    Spec("dj52-psycopg3", "Django==5.2.19", "psycopg[binary]==3.3.9"),
    Spec("dj60-psycopg2", "Django==6.0.10", "psycopg2-binary==2.9.13", "trixie"),
    Spec("dj60-psycopg3", "Django==6.0.10", "psycopg[binary]==3.3.9", "trixie"),
)


class AppVenv(NamedTuple):
    """A built venv: its directory and its interpreter."""

    spec: Spec
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def command(self, *args: str, cwd: Path = DJANGOAPP) -> list[str]:
        """``python ARGS`` in this venv; in the trixie root for a ``trixie`` venv
        (chroot changes the directory, so ``cwd`` is applied inside)."""
        if self.spec.python == "host":
            return [str(self.python), *args]
        from tests.support import trixie

        return trixie.command(trixie.root("base"), [str(self.python), *args], cwd=cwd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(venv: AppVenv, *args: str) -> None:
    done = subprocess.run(
        venv.command("-m", "pip", "--disable-pip-version-check", *args, cwd=REPO),
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
    with locked(CACHE / f"{spec.key}.lock"):
        venv = AppVenv(spec, path)
        if not done_marker.exists():
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(_python(spec, "-m", "venv", str(path)), check=True)
            _pip(venv, "install", "--quiet", *spec.requirements, *APP_EXTRAS)
            done_marker.write_text("\n".join([*spec.requirements, *APP_EXTRAS]) + "\n")
    return venv


def _python(spec: Spec, *args: str) -> list[str]:
    """The interpreter ``spec`` names, with ``args``."""
    if spec.python == "host":
        return [sys.executable, *args]
    from tests.support import trixie

    return trixie.command(trixie.root("base"), ["python3", *args])


def with_preflight(venv: AppVenv, wheel: Path) -> AppVenv:
    """Install the package from ``wheel`` into ``venv`` without its dependencies."""
    with locked(CACHE / f"{venv.spec.key}.lock"):
        _pip(venv, "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel))
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
    return venv.command(*args)


def fresh(parent: Path) -> Path:
    """A new, empty venv under ``parent`` (not cached); returns its interpreter."""
    path = Path(tempfile.mkdtemp(prefix="venv-", dir=parent))
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def driver_of(
    python: Path | AppVenv, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Which driver module Django's PostgreSQL backend uses in that interpreter (or venv)."""
    code = (
        "from django.db.backends.postgresql import base; "
        "print(getattr(base, 'is_psycopg3', False) and 'psycopg' or 'psycopg2')"
    )
    command = (
        python.command("-c", code, cwd=cwd or DJANGOAPP)
        if isinstance(python, AppVenv)
        else [str(python), "-c", code]
    )
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=cwd, env=env)
    return done.stdout.strip()
