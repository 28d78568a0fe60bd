"""The docs' reference tables are generated from the code and are current."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from preflight import _events, _exit_codes, _settings
from tests.support import scripts

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
CHECK = (ROOT / "docs" / "check.md").read_text()
MIGRATIONS = (ROOT / "docs" / "migrations.md").read_text()
TROUBLESHOOTING = (ROOT / "docs" / "troubleshooting.md").read_text()


def _tables() -> ModuleType:
    return scripts.load("readme_tables")


def _pages() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in _tables().pages()}


@pytest.mark.parametrize("page", sorted(_pages()))
def test_generated_tables_are_current(page: str) -> None:
    """Regenerating a page's tables from the code changes nothing."""
    text = (ROOT / page).read_text()
    assert _tables().render(text) == text


def test_every_table_is_in_exactly_one_page() -> None:
    """Each generated block renders into one page: none lost in the split, none twice."""
    placement = _tables().placement(_pages())
    assert placement == {
        "classification": ["docs/configuration.md"],
        "ssl-defaults": ["docs/configuration.md"],
        "exit-codes": ["README.md"],
        "reasons": ["docs/troubleshooting.md"],
        "options": ["docs/configuration.md"],
        "agreement-apps": ["docs/check.md"],
        "agreement-servers": ["docs/check.md"],
        "agreement-cells": ["docs/check.md"],
        "dj-database-url": ["docs/configuration.md"],
        "adoption": ["docs/adopting-balancer.md"],
    }


def test_a_changed_table_is_noticed() -> None:
    """The check would fail if a table drifted from the code."""
    stale = TROUBLESHOOTING.replace("| `refused` |", "| `refused-typo` |", 1)
    assert stale != TROUBLESHOOTING
    assert _tables().render(stale) == TROUBLESHOOTING


def test_the_script_reports_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`readme_tables.py --check` exits 1 for a stale page and 0 once rewritten."""
    tables = _tables()
    for page, text in _pages().items():
        (tmp_path / page).parent.mkdir(exist_ok=True)
        (tmp_path / page).write_text(text)
    stale = tmp_path / "docs" / "configuration.md"
    stale.write_text(CONFIGURATION.replace("| `local` | `prefer` |", "| `local` | `require` |"))
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    assert tables.main(["--check"]) == 1
    assert tables.main([]) == 0
    assert tables.main(["--check"]) == 0
    assert stale.read_text() == CONFIGURATION


@pytest.mark.parametrize("variable", _settings.VARIABLES)
def test_configuration_documents_variable(variable: str) -> None:
    """Every SQL_* variable the parser reads has a row in the configuration page."""
    assert f"| `{variable}` |" in CONFIGURATION


@pytest.mark.parametrize(
    "event", [v for k, v in vars(_events).items() if k.isupper() and isinstance(v, str)]
)
def test_docs_document_event(event: str) -> None:
    """Every event name is in a log table: the check's page, or the migrations page."""
    page = MIGRATIONS if event.startswith("preflight.migrate.") else CHECK
    assert f"| `{event}` |" in page


def test_help_epilog_comes_from_the_table() -> None:
    """The --help epilog lists every exit code of the table."""
    epilog = _exit_codes.epilog()
    for row in _exit_codes.CLASSES:
        if row is not _exit_codes.INTERRUPTED:
            assert re.search(rf"\b{row.code} {row.name}\b", epilog)


@pytest.mark.parametrize(
    "example",
    [
        "tests/fixtures/djangoapp/ledger/management/commands/wait_for_db.py",
        "tests/fixtures/examples/database_ready.py",
    ],
)
def test_python_api_examples_are_the_tested_files(example: str) -> None:
    """The management command and the pytest fixture the README shows are, verbatim, the
    files tests/integration/test_api.py runs."""
    section = README.split("### Python API", 1)[1].split("\n## ", 1)[0]
    assert f"```python\n{(ROOT / example).read_text()}```" in section


def test_python_api_table_lists_exactly_all() -> None:
    """The README's Python API table names exactly preflight.__all__, no more, no fewer."""
    section = README.split("### Python API", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert listed == set(__import__("preflight").__all__)
