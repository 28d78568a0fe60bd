"""The README's tables say what the code does: each row is rendered from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight import _env, _exit_codes, _failures
from preflight._hosts import RULES
from preflight._sslmode import DEFAULTS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def classification_rows() -> list[str]:
    return [f"| `{kind.value}` | {rule} |" for kind, rule in RULES]


def ssl_rows() -> list[str]:
    return [
        f"| `{kind.value}` | `{plain}` | `{with_ca}` |"
        for kind, (plain, with_ca) in DEFAULTS.items()
    ]


def exit_code_rows() -> list[str]:
    rows = []
    for row in _exit_codes.TABLE:
        code = "130 / 143" if row is _exit_codes.INTERRUPTED else str(row.code)
        rows.append(f"| {code} | `{row.name}` | {row.cause} | {row.retried} |")
    return rows


def option_rows() -> list[str]:
    return [f"| `{s.variable}` | `{s.flag}` | {s.help} |" for s in _env.OPTION_SPECS]


def reason_rows() -> list[str]:
    return [
        f"| `{r.name}` | `{r.error.exit_class.name}` ({r.error.exit_class.code}) | {r.hint} |"
        for r in _failures.REASONS.values()
    ]


@pytest.mark.parametrize(
    "render", [classification_rows, ssl_rows, exit_code_rows, option_rows, reason_rows]
)
def test_readme_table_matches_code(render: object) -> None:
    """Every row the code implies is in the README, verbatim."""
    assert callable(render)
    missing = [row for row in render() if row not in README]
    assert not missing, "README rows out of date:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "variable",
    [*_env.CONNECTION_VARIABLES, "SQL_ENGINE", "SQL_CONNECTION_TYPE", "DATABASE_URL"],
)
def test_readme_documents_variable(variable: str) -> None:
    """Every SQL_* variable the parser reads has a row in the README."""
    assert f"| `{variable}` |" in README


if __name__ == "__main__":
    for render in (classification_rows, ssl_rows, exit_code_rows, option_rows, reason_rows):
        print("\n".join(render()), end="\n\n")
