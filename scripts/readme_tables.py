"""Generate the docs' reference tables from the code, or check they are current.

    python scripts/readme_tables.py          # rewrite the generated blocks in every page
    python scripts/readme_tables.py --check  # exit 1 when a page is out of date

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``, in
whichever page (README.md, CONTRIBUTING.md, docs/*.md) holds it; each block is in
exactly one page.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from preflight import _exit_codes, _options, _settings
from preflight._hosts import RULES
from preflight._sslmode import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
# The comparison corpora and the agreement matrix's cells live with the tests.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.support import comparisons  # noqa: E402


def pages() -> list[Path]:
    """Every Markdown page of the documentation."""
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def classification() -> list[str]:
    return ["| kind | rule |", "|---|---|"] + [
        f"| `{kind.value}` | {rule} |" for kind, rule in RULES
    ]


def ssl_defaults() -> list[str]:
    return ["| kind | default | default with `SQL_SSL_ROOT_CERT` |", "|---|---|---|"] + [
        f"| `{kind.value}` | `{plain}` | `{with_ca}` |"
        for kind, (plain, with_ca) in DEFAULTS.items()
    ]


def exit_codes() -> list[str]:
    rows = ["| code | class | typical cause | reasons |", "|---|---|---|---|"]
    for row in _exit_codes.CLASSES:
        code = "130 / 143" if row is _exit_codes.INTERRUPTED else str(row.code)
        reasons = ", ".join(
            f"`{reason}`" for reason, info in _exit_codes.REASONS.items() if info.exit_class is row
        )
        rows.append(f"| {code} | `{row.name}` | {row.cause} | {reasons} |")
    return rows


def reasons() -> list[str]:
    rows = ["| reason | class (exit code) | retried | what to check |", "|---|---|---|---|"]
    for reason, info in _exit_codes.REASONS.items():
        retried = "yes" if info.retried else "no"
        klass = f"`{info.exit_class.name}` ({info.exit_class.code})"
        rows.append(f"| `{reason}` | {klass} | {retried} | {info.hint} |")
    return rows


def options() -> list[str]:
    return ["| variable | flag | meaning |", "|---|---|---|"] + [
        f"| `{s.variable}` | `{s.flag}` | {s.help} |" for s in _options.SPECS
    ]


def variables() -> list[str]:
    return [f"`{name}`" for name in _settings.VARIABLES]


def agreement_apps() -> list[str]:
    from tests.support.appvenv import APP_EXTRAS, SPECS

    python = {"host": "3.11 (this machine)", "trixie": "3.13 (the trixie root)"}
    extras = ", ".join(APP_EXTRAS)
    return ["| app cell | Django + driver | Python | also installed |", "|---|---|---|---|"] + [
        f"| `{spec.name}` | {spec.version} | {python[spec.python]} | {extras} |" for spec in SPECS
    ]


def agreement_servers() -> list[str]:
    from tests.support.versions import SERVERS

    yes = {True: "yes", False: "no"}
    return ["| PostgreSQL | from | TLS | pgvector |", "|---|---|---|---|"] + [
        f"| {s.major} | {s.source} | {yes[s.tls]} | {yes[s.vector]} |" for s in SERVERS
    ]


def agreement_cells() -> list[str]:
    from tests.integration.test_agreement import CELLS
    from tests.support.appvenv import SPECS

    scenarios = list({scenario.name: scenario for scenario, _ in CELLS}.values())
    ran = {(scenario.name, spec.name) for scenario, spec in CELLS}
    rows = [
        "| scenario | PostgreSQL | preflight | " + " | ".join(f"`{s.name}`" for s in SPECS) + " |",
        "|---|---|---|" + "---|" * len(SPECS),
    ]
    for scenario in scenarios:
        expected = "0" if scenario.reason is None else f"{scenario.code} `{scenario.reason}`"
        marks = " | ".join("✓" if (scenario.name, s.name) in ran else "" for s in SPECS)
        rows.append(f"| {scenario.name} | {scenario.postgres} | {expected} | {marks} |")
    return [*rows, "", f"{len(CELLS)} cells."]


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "classification": classification,
    "ssl-defaults": ssl_defaults,
    "exit-codes": exit_codes,
    "reasons": reasons,
    "options": options,
    "agreement-apps": agreement_apps,
    "agreement-servers": agreement_servers,
    "agreement-cells": agreement_cells,
    "dj-database-url": comparisons.dj_database_url_table,
    "adoption": comparisons.adoption_table,
}


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    return lambda match: match.group(1) + body + match.group(2)


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)


def render(text: str) -> str:
    """``text`` with every generated block it holds replaced by what the code says now."""
    for name, block in BLOCKS.items():
        text = _pattern(name).sub(_replacement("\n".join(block()) + "\n"), text)
    return text


def placement(texts: dict[str, str]) -> dict[str, list[str]]:
    """Block name -> the pages (by name) that hold it; each must hold exactly one."""
    return {
        name: [page for page, text in texts.items() if _pattern(name).search(text)]
        for name in BLOCKS
    }


def main(argv: list[str]) -> int:
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in pages()}
    misplaced = {name: at for name, at in placement(texts).items() if len(at) != 1}
    if misplaced:
        print(f"each generated block must be in exactly one page: {misplaced}")
        return 1
    stale = [page for page, text in texts.items() if render(text) != text]
    if "--check" in argv:
        if stale:
            print(f"tables out of date in {', '.join(stale)}: run python scripts/readme_tables.py")
            return 1
        return 0
    for page in stale:
        (ROOT / page).write_text(render(texts[page]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
