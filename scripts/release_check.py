"""Check that a release is one version everywhere, before anything is published.

    python scripts/release_check.py                      # the tree is consistent
    python scripts/release_check.py --tag v0.3.0         # ... and the tag is its version
    python scripts/release_check.py --tag v0.3.0 --dist dist   # ... and dist/ holds it
    python scripts/release_check.py --notes              # print the newest entry's text

The version is written once, in ``pyproject.toml``.  Everything else follows it:
the git tag ``vX.Y.Z`` (the release workflow runs this with the pushed tag and
stops on a mismatch), the newest entry of ``CHANGELOG.md``, the image tag that
the compose override and the kustomize component pin, the versions the docs name
(the requirement, the release's wheel URL, the tag commands), and the names of
the built sdist and wheel.  Prints every problem and exits 1, or exits 0.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "ghcr.io/codeforphilly/django-db-preflight"
# Files that name the version being released, and how they name it.
PINNING = ("compose", "k8s", "docs", "README.md", "CONTRIBUTING.md")
MENTIONS = (
    re.compile(rf"{re.escape(IMAGE)}:([\w.<>-]+)"),
    re.compile(r"django-db-preflight==([\w.]+)"),
    re.compile(r"/releases/download/v([\w.]+)/"),
    re.compile(r"django_db_preflight-([\w.]+?)(?:-py3|\.tar\.gz)"),
    re.compile(r"git (?:tag -a|push origin) v([\w.]+)"),
    re.compile(r"gh release download v([\w.]+)"),
)
# Placeholders the docs may use instead of a version.
PLACEHOLDERS = {"<version>", "X.Y.Z"}
SEMVER = re.compile(r"\d+\.\d+\.\d+")
ENTRY = re.compile(
    r"^## (?:\[(?P<linked>[^\]]+)\]|(?P<plain>\d+\.\d+\.\d+))(?: - (?P<date>.*?))?\s*$",
    re.MULTILINE,
)


class Entry(NamedTuple):
    """One ``## [X.Y.Z] - YYYY-MM-DD`` heading of the changelog."""

    version: str
    date: str | None
    linked: bool


def project_version(root: Path = ROOT) -> str:
    """The version written in pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def entries(changelog: str) -> list[Entry]:
    """The changelog's version headings, newest first, ``Unreleased`` included."""
    return [
        Entry(match["linked"] or match["plain"], match["date"], match["linked"] is not None)
        for match in ENTRY.finditer(changelog)
    ]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def changelog_problems(changelog: str, version: str) -> list[str]:
    """What is wrong with ``changelog`` for a release of ``version`` (Keep a Changelog)."""
    found = entries(changelog)
    if not found or found[0].version != "Unreleased":
        return ["CHANGELOG.md: the first section must be ## [Unreleased]"]
    released = found[1:]
    if not released:
        return [f"CHANGELOG.md: no entry for {version}"]
    problems = []
    newest = released[0]
    if newest.version != version:
        problems.append(
            f"CHANGELOG.md: the newest entry is {newest.version}, pyproject.toml says {version}"
        )
    for entry in released:
        if not SEMVER.fullmatch(entry.version) or not re.fullmatch(
            r"\d{4}-\d{2}-\d{2}", entry.date or ""
        ):
            problems.append(f"CHANGELOG.md: {entry.version}: not X.Y.Z - YYYY-MM-DD")
            return problems
    versions = [_key(entry.version) for entry in released]
    dates = [entry.date or "" for entry in released]
    if versions != sorted(versions, reverse=True) or len(set(versions)) != len(versions):
        problems.append("CHANGELOG.md: versions are not newest first, each once")
    if dates != sorted(dates, reverse=True):
        problems.append("CHANGELOG.md: dates are not newest first")
    for entry in found:
        if entry.linked and not re.search(
            rf"^\[{re.escape(entry.version)}\]: https://", changelog, re.M
        ):
            problems.append(f"CHANGELOG.md: [{entry.version}] has no link")
    return problems


def notes(changelog: str, version: str) -> str:
    """The text of ``version``'s changelog entry (the GitHub release's notes)."""
    headings = list(ENTRY.finditer(changelog))
    for number, match in enumerate(headings):
        if (match["linked"] or match["plain"]) == version:
            end = headings[number + 1].start() if number + 1 < len(headings) else None
            body = changelog[match.end() : end]
            return re.sub(r"^\[[^\]]+\]: \S+\n?", "", body, flags=re.M).strip() + "\n"
    raise ValueError(f"CHANGELOG.md has no entry for {version}")


def version_pins(root: Path = ROOT) -> dict[str, set[str]]:
    """File (relative) -> the versions it names: image tags, requirements, URLs, tags."""
    pins: dict[str, set[str]] = {}
    for name in PINNING:
        path = root / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and file.suffix in {".md", ".yaml", ".yml"}:
                text = file.read_text()
                found = {version for pattern in MENTIONS for version in pattern.findall(text)}
                if found:
                    pins[str(file.relative_to(root))] = found
    return pins


def dist_problems(dist: Path, version: str) -> list[str]:
    """The built files must be exactly this version's sdist and wheel."""
    expected = {
        f"django_db_preflight-{version}.tar.gz",
        f"django_db_preflight-{version}-py3-none-any.whl",
    }
    found = {path.name for path in dist.iterdir()} if dist.is_dir() else set()
    if found != expected:
        return [f"{dist}: holds {sorted(found)}, expected {sorted(expected)}"]
    return []


def problems(root: Path = ROOT, tag: str | None = None, dist: Path | None = None) -> list[str]:
    """Every inconsistency between the version and the tag, changelog, pins and dist."""
    version = project_version(root)
    found = []
    if not SEMVER.fullmatch(version):
        found.append(f"pyproject.toml: version {version!r} is not X.Y.Z")
    if tag is not None and tag != f"v{version}":
        found.append(f"the tag {tag!r} is not v{version}, the version in pyproject.toml")
    found += changelog_problems((root / "CHANGELOG.md").read_text(), version)
    for file, named in version_pins(root).items():
        wrong = sorted(named - PLACEHOLDERS - {version})
        if wrong:
            found.append(f"{file}: names version {', '.join(wrong)}, not {version}")
    if dist is not None:
        found += dist_problems(dist, version)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tag", help="the git tag being released, vX.Y.Z")
    parser.add_argument("--dist", type=Path, help="the directory python -m build wrote")
    parser.add_argument("--notes", action="store_true", help="print the version's entry")
    args = parser.parse_args(argv)
    if args.notes:
        print(notes((ROOT / "CHANGELOG.md").read_text(), project_version()), end="")
        return 0
    found = problems(ROOT, args.tag, args.dist)
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"release {project_version()}: consistent")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
