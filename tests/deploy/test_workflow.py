"""The image and release workflows: actionlint is clean, actions are pinned, the build
and the publication are what the docs say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
WORKFLOWS = [WORKFLOW, RELEASE]
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("actionlint") or shutil.which(
        "actionlint", path=os.path.dirname(sys.executable)
    )
    if tool is None:
        unavailable("actionlint (PyPI) is not installed")
    assert tool is not None
    return subprocess.run(
        [tool, "-no-color", str(path)], capture_output=True, text=True, check=False
    )


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return list(workflow["jobs"]["image"]["steps"])


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_is_clean(workflow: Path) -> None:
    """actionlint finds nothing in either workflow."""
    done = _actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is not vacuous: an unknown step output is reported."""
    broken = tmp_path / ".github" / "workflows" / "image.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("steps.build.outputs", "steps.built.outputs"))
    done = _actionlint(broken)
    assert done.returncode == 1
    assert "built" in done.stdout


def _uses(workflow: Path) -> list[str]:
    lines = [line.strip() for line in workflow.read_text().splitlines() if "uses:" in line]
    return [line.split("uses:", 1)[1].strip() for line in lines]


@pytest.mark.parametrize(
    ("workflow", "count"), [(WORKFLOW, 7), (RELEASE, 8)], ids=["image", "release"]
)
def test_every_action_is_pinned_by_full_commit_sha(workflow: Path, count: int) -> None:
    """Each `uses:` is owner/repo@<40 hex> followed by the release it is."""
    uses = _uses(workflow)
    assert len(uses) == count
    assert [u for u in uses if not PINNED.match(u)] == []


def test_an_action_is_pinned_alike_in_both_workflows() -> None:
    """An action both workflows use (checkout) is pinned to one commit and release."""
    pins: dict[str, set[str]] = {}
    for workflow in WORKFLOWS:
        for use in _uses(workflow):
            name, pin = use.split("@", 1)
            pins.setdefault(name, set()).add(pin)
    assert {name: pin for name, pin in pins.items() if len(pin) > 1} == {}
    assert "actions/checkout" in pins


def test_builds_both_platforms_with_attestations_and_signs_by_digest() -> None:
    """amd64 + arm64, SBOM and provenance, keyless signature of the pushed digest."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["image"]
    assert job["env"]["IMAGE"] == "ghcr.io/codeforphilly/django-db-preflight"
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    (build,) = [s for s in _steps() if s.get("id") == "build"]
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert (build["with"]["sbom"], build["with"]["provenance"]) == (True, "mode=max")
    (meta,) = [s for s in _steps() if s.get("id") == "meta"]
    assert meta["with"]["tags"].split() == [
        "type=semver,pattern={{version}}",
        "type=semver,pattern={{major}}.{{minor}}",
        "type=sha,format=long",
    ]
    (sign,) = [s for s in _steps() if "cosign sign" in s.get("run", "")]
    assert sign["run"] == 'cosign sign --yes "${IMAGE}@${DIGEST}"'
    assert sign["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"


def test_pushes_outside_pull_requests_only() -> None:
    """Pushes to main, semver tags and manual runs publish; pull requests only build."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"}
    job = workflow["jobs"]["image"]
    assert job["env"]["PUSH"] == "${{ github.event_name != 'pull_request' }}"
    (build,) = [s for s in _steps() if s.get("id") == "build"]
    assert build["with"]["push"] == "${{ env.PUSH == 'true' }}"
    gated = [s for s in _steps() if "login-action" in s.get("uses", "") or "cosign" in str(s)]
    assert len(gated) == 3
    assert all(s["if"] == "env.PUSH == 'true'" for s in gated)


# -- release.yml (issue 17) ------------------------------------------------------


def _release() -> dict[Any, Any]:
    return dict(yaml.safe_load(RELEASE.read_text()))


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) for step in job["steps"]]


def test_release_runs_on_the_tags_the_image_is_published_for() -> None:
    """A tag vX.Y.Z starts both workflows (one version for package and image), nothing else."""
    release = _release()
    image = yaml.safe_load(WORKFLOW.read_text())
    assert release[True] == {"push": {"tags": image[True]["push"]["tags"]}}
    assert release["permissions"] == {}


def test_release_builds_once_checks_and_attests() -> None:
    """One build: tag check, locked tools, build, twine --strict, dist check, attest, upload."""
    build = _release()["jobs"]["build"]
    assert build["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "attestations": "write",
    }
    runs = _runs(build)
    order = [
        next(i for i, run in enumerate(runs) if needle in run)
        for needle in (
            'release_check.py --tag "$TAG"',
            "pip install --require-hashes --no-deps -r requirements/release.txt",
            "python -m build --outdir dist .",
            "twine check --strict dist/*",
            'release_check.py --tag "$TAG" --dist dist',
        )
    ]
    assert order == sorted(order)
    (attest,) = [s for s in build["steps"] if "attest-build-provenance" in s.get("uses", "")]
    assert attest["with"] == {"subject-path": "dist/*"}
    (upload,) = [s for s in build["steps"] if "upload-artifact" in s.get("uses", "")]
    assert upload["with"]["name"] == "dist"
    assert upload["with"]["if-no-files-found"] == "error"
    assert (
        sum("python -m build" in run for job in _release()["jobs"].values() for run in _runs(job))
        == 1
    )


def test_pypi_is_trusted_publishing_without_a_token() -> None:
    """PyPI job: `pypi` environment, only id-token: write, no password, no secret at all."""
    pypi = _release()["jobs"]["pypi"]
    assert pypi["needs"] == "build"
    assert pypi["environment"]["name"] == "pypi"
    assert pypi["permissions"] == {"id-token": "write"}
    (publish,) = [s for s in pypi["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert "with" not in publish
    (download,) = [s for s in pypi["steps"] if "download-artifact" in s.get("uses", "")]
    assert download["with"] == {"name": "dist", "path": "dist/"}
    assert "secrets." not in RELEASE.read_text()


def test_github_release_attaches_the_built_files_after_pypi() -> None:
    """After PyPI, a release for the tag with dist/* attached and the changelog as notes."""
    job = _release()["jobs"]["github-release"]
    assert job["needs"] == "pypi"
    assert job["permissions"] == {"contents": "write"}
    (run,) = [run for run in _runs(job) if "gh release create" in run]
    assert 'gh release create "$TAG" dist/* --verify-tag' in run
    assert "release_check.py --notes > notes.md" in run


def test_image_workflow_refuses_a_tag_that_is_not_the_version() -> None:
    """On a tag, the image workflow runs the same version check before building."""
    (check,) = [s for s in _steps() if "release_check.py" in s.get("run", "")]
    assert check["if"] == "startsWith(github.ref, 'refs/tags/')"
    assert check["run"] == 'python3 scripts/release_check.py --tag "$TAG"'
    names = [s.get("id") or s.get("name") or s.get("uses") for s in _steps()]
    assert names.index(check["name"]) < names.index("build")


def test_release_tools_are_locked_as_in_dev() -> None:
    """requirements/release.txt pins build, twine and their deps at dev.txt's versions."""

    def pins(name: str) -> dict[str, str]:
        text = (ROOT / "requirements" / name).read_text()
        return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.MULTILINE))

    release, dev = pins("release.txt"), pins("dev.txt")
    assert {"build", "twine"} <= set(release)
    assert {name: version for name, version in release.items() if dev.get(name) != version} == {}
