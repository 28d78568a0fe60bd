"""One version: written in pyproject.toml, read from the installed metadata, and the
tag, the changelog, the image pins and the built files all follow it."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import preflight
from tests.support import scripts

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CHANGELOG = (ROOT / "CHANGELOG.md").read_text()


def _release_check() -> ModuleType:
    return scripts.load("release_check")


def test_version_comes_from_the_installed_metadata() -> None:
    """preflight.__version__ is the installed distribution's version, pyproject's."""
    assert preflight.__version__ == importlib.metadata.version("django-db-preflight") == VERSION


def test_the_version_is_written_once() -> None:
    """No file of the package spells the version out: pyproject.toml is the one place."""
    for path in (ROOT / "preflight").rglob("*.py"):
        text = path.read_text()
        assert VERSION not in text, path
        assert not re.search(r"__version__\s*=", text), path


def test_the_tree_is_consistent_for_its_own_tag() -> None:
    """The changelog's newest entry, the image pins and the tag vX.Y.Z all agree."""
    assert _release_check().problems(ROOT) == []
    assert _release_check().problems(ROOT, tag=f"v{VERSION}") == []


@pytest.mark.parametrize("tag", ["v0.0.1", VERSION, f"v{VERSION}rc1", f"release-{VERSION}"])
def test_a_tag_that_is_not_the_version_is_refused(tag: str) -> None:
    """A tag other than v + pyproject's version is a problem (the workflow stops)."""
    (problem,) = _release_check().problems(ROOT, tag=tag)
    assert f"v{VERSION}" in problem


def test_the_script_exits_1_on_a_mismatch() -> None:
    """The command the release workflow runs: exit 0 for the right tag, 1 otherwise."""
    script = [sys.executable, str(ROOT / "scripts" / "release_check.py"), "--tag"]
    right = subprocess.run([*script, f"v{VERSION}"], capture_output=True, text=True, check=False)
    assert right.returncode == 0, right.stderr
    wrong = subprocess.run([*script, "v0.0.1"], capture_output=True, text=True, check=False)
    assert wrong.returncode == 1
    assert "v0.0.1" in wrong.stderr


def _changelog(*entries: str) -> str:
    head = "# Changelog\n\n## [Unreleased]\n\n"
    body = "".join(f"{entry}\n\n- something\n\n" for entry in entries)
    links = "".join(
        f"[{m}]: https://example.invalid/{m}\n" for m in re.findall(r"## \[([\d.]+)\]", body)
    )
    return head + body + "[Unreleased]: https://example.invalid/HEAD\n" + links


@pytest.mark.parametrize(
    ("changelog", "expected"),
    [
        (_changelog("## [1.2.0] - 2026-11-30", "## 1.1.0 - 2026-11-01"), None),
        (_changelog("## [1.1.0] - 2026-11-30"), "the newest entry is 1.1.0"),
        (_changelog("## [1.2.0]"), "not X.Y.Z - YYYY-MM-DD"),
        (_changelog("## [1.2.0] - 30 Nov 2026"), "not X.Y.Z - YYYY-MM-DD"),
        (_changelog("## [1.2.0] - 2026-11-30", "## 1.3.0 - 2026-11-01"), "newest first, each once"),
        (_changelog("## [1.2.0] - 2026-10-30", "## 1.1.0 - 2026-11-01"), "dates are not newest"),
        (_changelog(), "no entry for 1.2.0"),
        ("# Changelog\n\n## [1.2.0] - 2026-11-30\n", "must be ## [Unreleased]"),
        (
            _changelog("## [1.2.0] - 2026-11-30").replace("[1.2.0]: https", "[1.2.0]: ftp"),
            "[1.2.0] has no link",
        ),
    ],
)
def test_changelog_rules(changelog: str, expected: str | None) -> None:
    """Keep a Changelog: Unreleased, then X.Y.Z - date newest first, linked, newest = version."""
    problems = _release_check().changelog_problems(changelog, "1.2.0")
    if expected is None:
        assert problems == []
    else:
        assert any(expected in problem for problem in problems), problems


def test_changelog_newest_entry_is_this_version() -> None:
    """CHANGELOG.md's newest release is pyproject's version, with a date."""
    entries = _release_check().entries(CHANGELOG)
    assert entries[0].version == "Unreleased"
    assert entries[1].version == VERSION
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entries[1].date or "")


@pytest.mark.parametrize(
    ("path", "written"),
    [
        ("k8s/components/db-preflight/init-container.yaml", "django-db-preflight:{}"),
        ("compose/docker-compose.preflight.yml", "django-db-preflight:{}"),
        ("docs/adopting-balancer.md", "django-db-preflight=={}"),
        ("docs/adopting-balancer.md", "releases/download/v{}/"),
        ("docs/adopting-balancer.md", "django_db_preflight-{}-py3"),
        ("docs/adopting-balancer.md", "git tag -a v{}"),
        ("docs/adopting-balancer.md", "gh release download v{}"),
    ],
)
def test_a_version_left_behind_is_found(tmp_path: Path, path: str, written: str) -> None:
    """An image tag, requirement, release URL or tag command naming another version is found."""
    release_check = _release_check()
    for name in ("pyproject.toml", "CHANGELOG.md", "README.md", "CONTRIBUTING.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("compose", "k8s", "docs"):
        shutil.copytree(ROOT / name, tmp_path / name)
    assert release_check.problems(tmp_path) == []
    changed = tmp_path / path
    text = changed.read_text()
    assert written.format(VERSION) in text
    changed.write_text(text.replace(written.format(VERSION), written.format("0.0.9"), 1))
    (problem,) = release_check.problems(tmp_path)
    assert problem == f"{path}: names version 0.0.9, not {VERSION}"


def test_release_notes_are_the_newest_entry() -> None:
    """--notes prints this version's entry: its text, without the next entry or links."""
    notes = _release_check().notes(CHANGELOG, VERSION)
    assert notes.startswith(CHANGELOG.split(f"## [{VERSION}]", 1)[1].split("\n", 2)[2][:40])
    assert "\n## " not in notes
    assert "]: https://" not in notes
    with pytest.raises(ValueError, match=r"no entry for 9\.9\.9"):
        _release_check().notes(CHANGELOG, "9.9.9")
