"""The distributions a release would publish, built once per test session.

``python -m build`` makes the sdist, then the wheel from the sdist (so the wheel
also proves that the sdist rebuilds), exactly as the release workflow does, and
from what the workflow's checkout holds: a copy of the files git knows (tracked
or new, nothing .gitignore excludes), so neither a stale ``*.egg-info`` nor a
cache in the working tree can change what is built, and the build leaves nothing
behind in it.  Every test that installs the package (the app venvs, the install
tests) takes this wheel, never the source tree.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]


class Dist(NamedTuple):
    """What ``python -m build`` wrote."""

    sdist: Path
    wheel: Path


def build(source: Path, outdir: Path) -> Dist:
    """``python -m build`` of ``source`` into ``outdir`` (raises when it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m build failed:\n{done.stdout}\n{done.stderr}")
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return Dist(sdist, wheel)


def project_files(root: Path = REPO) -> list[str]:
    """The project as git sees it: tracked and new files, nothing .gitignore excludes."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout
    return sorted(name for name in listed.split("\0") if name and (root / name).is_file())


def clean_copy(destination: Path, root: Path = REPO) -> Path:
    """A copy of the project files under ``destination``, as a fresh checkout has them."""
    for name in project_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return destination


@functools.cache
def built() -> Dist:
    """This checkout's sdist and wheel, built on first use and removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="preflight-dist-"))
    atexit.register(shutil.rmtree, directory, True)
    return build(clean_copy(directory / "source"), directory / "dist")
