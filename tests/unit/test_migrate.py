"""The migrate runner's pure parts, and the rule that makes preflight/django/ a directory
of standard library and Django only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import preflight.django
from preflight.django._lock import lock_key, lock_parts

DJANGO_DIR = Path(preflight.django.__file__).parent
FORBIDDEN = ("structlog", "tenacity", "psycopg", "psycopg2")


def _modules() -> list[str]:
    return sorted(
        f"preflight.django.{path.stem}" if path.stem != "__init__" else "preflight.django"
        for path in DJANGO_DIR.glob("*.py")
    )


@pytest.mark.parametrize("module", _modules())
def test_django_directory_imports_no_check_dependency(module: str) -> None:
    """Every module under preflight/django/ imports with structlog, tenacity and both
    drivers made unimportable, and loads none of them (nor Django, at import)."""
    code = (
        "import sys, importlib\n"
        f"for name in {FORBIDDEN!r}: sys.modules[name] = None\n"
        f"importlib.import_module({module!r})\n"
        "loaded = {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        f"assert not loaded & {{*{FORBIDDEN!r}, 'django'}}, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_runner_is_in_the_directory() -> None:
    """The rule above covers the runner: it lives in preflight/django/."""
    assert "preflight.django.__main__" in _modules()


@pytest.mark.parametrize(
    ("database", "key"),
    # Pinned: runners of two releases during a rolling update must take the same lock
    # (tests/integration/test_migrate.py checks LOCK_KEY_SQL agrees on a live server).
    [("app", 7919262888162814900), ("balancer", 4662747917323649888)],
)
def test_lock_key_is_stable(database: str, key: int) -> None:
    """The key of a database name never changes between releases."""
    assert lock_key(database) == key


@given(st.text(min_size=1, max_size=63))
def test_lock_key_is_a_signed_bigint_and_parts_rebuild_it(database: str) -> None:
    """Every key fits PostgreSQL's bigint, and (classid, objid) are the two 32-bit halves."""
    key = lock_key(database)
    assert -(2**63) <= key < 2**63
    classid, objid = lock_parts(key)
    assert 0 <= classid < 2**32
    assert 0 <= objid < 2**32
    rebuilt = (classid << 32) | objid
    assert rebuilt - (2**64 if rebuilt >= 2**63 else 0) == key
