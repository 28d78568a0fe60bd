"""The image workflow: actionlint is clean, actions are pinned, the build is what we say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
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


def test_actionlint_is_clean() -> None:
    """actionlint finds nothing in the workflow."""
    done = _actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is not vacuous: an unknown step output is reported."""
    broken = tmp_path / ".github" / "workflows" / "image.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("steps.build.outputs", "steps.built.outputs"))
    done = _actionlint(broken)
    assert done.returncode == 1
    assert "built" in done.stdout


def test_every_action_is_pinned_by_full_commit_sha() -> None:
    """Each `uses:` is owner/repo@<40 hex> followed by the release it is."""
    lines = [line.strip() for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    uses = [line.split("uses:", 1)[1].strip() for line in lines]
    assert len(uses) == 7
    assert [u for u in uses if not PINNED.match(u)] == []


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
