"""The README's reference tables are generated from the code and are current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from preflight import _events, _exit_codes, _settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_tables", ROOT / "scripts/readme_tables.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_current() -> None:
    """Regenerating the README's tables from the code changes nothing."""
    assert _tables().render(README) == README


def test_a_changed_table_is_noticed() -> None:
    """The check would fail if a table drifted from the code."""
    stale = README.replace("| `refused` |", "| `refused-typo` |", 1)
    assert stale != README
    assert _tables().render(stale) == README


@pytest.mark.parametrize("variable", _settings.VARIABLES)
def test_readme_documents_variable(variable: str) -> None:
    """Every SQL_* variable the parser reads has a row in the README."""
    assert f"| `{variable}` |" in README


@pytest.mark.parametrize(
    "event", [v for k, v in vars(_events).items() if k.isupper() and isinstance(v, str)]
)
def test_readme_documents_event(event: str) -> None:
    """Every event name the preflight logs is in the README's log table."""
    assert f"| `{event}` |" in README


def test_help_epilog_comes_from_the_table() -> None:
    """The --help epilog lists every exit code of the table."""
    epilog = _exit_codes.epilog()
    for row in _exit_codes.CLASSES:
        if row is not _exit_codes.INTERRUPTED:
            assert re.search(rf"\b{row.code} {row.name}\b", epilog)


@pytest.mark.parametrize("name", __import__("preflight").__all__)
def test_public_api_is_documented(name: str) -> None:
    """Every name in preflight.__all__ appears in the README's Python API table."""
    api = README.split("### Python API", 1)[1].split("\n## ", 1)[0]
    assert f"`{name}`" in api


def test_importing_the_package_loads_nothing_else() -> None:
    """`import preflight` loads none of its modules until a name is used, and __all__
    names exactly what it can load."""
    import subprocess
    import sys

    code = (
        "import sys, preflight; "
        "assert [m for m in sys.modules if m.startswith('preflight.')] == [], sys.modules; "
        "assert sorted(preflight.__all__) == sorted(preflight._WHERE); "
        "assert all(getattr(preflight, n) for n in preflight.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
