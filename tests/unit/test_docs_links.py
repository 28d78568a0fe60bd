"""Every relative link and anchor in the README, CONTRIBUTING, CHANGELOG and docs/ resolves."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def pages(root: Path) -> list[Path]:
    """The documentation pages whose links are checked."""
    top = [root / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
    return [*top, *sorted((root / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor GitHub gives the headings of ``text`` (repeats get -1, -2, ...)."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def _resolves(path: Path, anchor: str) -> bool:
    if not path.exists():
        return False
    if not anchor:
        return True
    return path.suffix == ".md" and anchor in anchors(path.read_text())


def broken_links(root: Path) -> list[str]:
    """``page: target`` for each relative link whose file or anchor does not exist."""
    broken = []
    for page in pages(root):
        text = page.read_text()
        for target in LINK.findall(CODE.sub("", FENCE.sub("", text))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not _resolves(resolved, anchor):
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


def test_every_relative_link_and_anchor_resolves() -> None:
    """No page links to a missing file or a heading that is not there."""
    assert broken_links(ROOT) == []


# Pointers to the docs from what ships (comments in the code, the manifests, the compose
# override, the Dockerfile): a page path, or a page and a heading in quotes.
CITED_PAGE = re.compile(r"\b((?:docs/[\w-]+|README|CONTRIBUTING)\.md)\b")
CITED_HEADING = re.compile(r"\((README|CONTRIBUTING\.md|docs/[\w-]+\.md), \"([^\"]+)\"\)")
SHIPPED = ("preflight", "k8s", "compose", "scripts", ".github")


def cited(root: Path) -> list[tuple[Path, str, str]]:
    """Every (file, page, heading) a shipped file points a reader to; heading may be ''."""
    files = [root / "Dockerfile", *(f for top in SHIPPED for f in (root / top).rglob("*"))]
    found = []
    for path in (f for f in files if f.is_file() and f.suffix in {"", ".py", ".yaml", ".yml"}):
        text = path.read_text()
        found += [(path, page, "") for page in CITED_PAGE.findall(text)]
        for page, heading in CITED_HEADING.findall(text):
            found.append((path, "README.md" if page == "README" else page, heading))
    return found


def test_what_ships_points_to_pages_and_headings_that_exist() -> None:
    """A comment citing a page (or a page's heading) names one that is there."""
    missing = [
        f"{path.relative_to(ROOT)}: {page} {heading!r}"
        for path, page, heading in cited(ROOT)
        if not _resolves(ROOT / page, slug(heading) if heading else "")
    ]
    assert missing == []
    assert any(page == "docs/configuration.md" for _, page, _ in cited(ROOT))


def test_the_pages_link_to_each_other() -> None:
    """The README links every page under docs/, CONTRIBUTING.md and CHANGELOG.md."""
    readme = (ROOT / "README.md").read_text()
    linked = set(LINK.findall(readme))
    for page in pages(ROOT)[1:]:
        assert str(page.relative_to(ROOT)) in linked


@pytest.mark.parametrize(
    ("link", "found"),
    [
        ("[ok](docs/check.md#logs)", False),
        ("[ok](#contents)", False),
        ("[missing page](docs/nothing.md)", True),
        ("[missing anchor](docs/check.md#no-such-heading)", True),
        ("[missing local anchor](#nowhere)", True),
        ("[anchor into code](Makefile#test)", True),
        ("`[in code](docs/nothing.md)`", False),
        ("[web](https://example.invalid/nothing)", False),
    ],
)
def test_a_broken_link_is_found(tmp_path: Path, link: str, found: bool) -> None:
    """The checker reports a missing file or anchor, and ignores code and web links."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "check.md").write_text("# The check\n\n## Logs\n")
    (tmp_path / "Makefile").write_text("test:\n")
    (tmp_path / "CONTRIBUTING.md").write_text("# Contributing\n")
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n")
    (tmp_path / "README.md").write_text(f"# Title\n\n## Contents\n\n{link}\n")
    assert bool(broken_links(tmp_path)) is found


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("libpq's own environment (`PG*`)", "libpqs-own-environment-pg"),
        ("Security: the password never shows", "security-the-password-never-shows"),
        ("The app and the check agree", "the-app-and-the-check-agree"),
        ("docker compose", "docker-compose"),
        ("0.3.0 - 2026-11-30", "030---2026-11-30"),
    ],
)
def test_slug_is_githubs(heading: str, anchor: str) -> None:
    """Headings become the anchors GitHub generates for them."""
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered() -> None:
    """A second heading with the same text gets the suffix -1."""
    assert anchors("## Tests\n\n## Tests\n") == {"tests", "tests-1"}


def layout(root: Path) -> set[Path]:
    """The paths CONTRIBUTING's layout table names (``_x.py`` after a path: the same folder)."""
    text = (root / "CONTRIBUTING.md").read_text()
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named: set[Path] = set()
    for row in (line for line in table.splitlines() if line.startswith("| `")):
        folder = Path()
        for name in CODE.findall(row.split(" | ")[0]):
            path = Path(name.strip("`"))
            if len(path.parts) > 1:
                folder = path.parent
            named.add(path if len(path.parts) > 1 else folder / path)
    return named


def test_the_layout_names_every_module_and_only_what_exists() -> None:
    """CONTRIBUTING's layout lists each module of the package, and nothing that is gone."""
    named = layout(ROOT)
    modules = {
        path.relative_to(ROOT)
        for path in (ROOT / "preflight").rglob("*.py")
        if path.name not in {"__init__.py", "__main__.py"} or path.parent.name == "django"
    }
    assert sorted(modules - named) == []
    assert sorted(str(path) for path in named if not (ROOT / path).exists()) == []
