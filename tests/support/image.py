"""Build the real Dockerfile with buildah and run its entrypoint as its own user."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/preflight:test"
# Lines buildah itself adds to stderr when the command exits non-zero.
_BUILDAH_NOISE = re.compile(
    r"^(subprocess exited with status \d+|Error: exit status \d+)\n", re.MULTILINE
)


def buildah_available() -> bool:
    return all(shutil.which(tool) for tool in ("buildah", "debootstrap"))


def build(image: str = IMAGE, suite: str = "trixie") -> None:
    """``scripts/image.sh build``: stand-in base from debootstrap (Debian ``suite``;
    trixie is the Dockerfile's base), then buildah bud, tagged ``image``."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "image.sh"), "build"],
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE": image, "SUITE": suite},
    )


def config(image: str = IMAGE) -> dict[str, object]:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout)["OCIv1"]["config"])


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def run(
    env: Mapping[str, str],
    *args: str,
    timeout: float = 120,
    files: Mapping[str, Path] | None = None,
    image: str = IMAGE,
    command: Sequence[str] | None = None,
) -> Ran:
    """Run the image's ENTRYPOINT with ``args`` as the image's USER, with ``env``.

    buildah run does not apply ENTRYPOINT or USER itself, so both are read
    from the image's own configuration.  ``files`` maps a path in the image to a
    host file bound over it (read-only); ``command`` replaces the ENTRYPOINT.
    """
    image_config = config(image)
    entrypoint = list(image_config["Entrypoint"])  # type: ignore[call-overload]
    user = str(image_config["User"])
    container = subprocess.run(
        ["buildah", "from", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        env_flags = [flag for key, value in env.items() for flag in ("--env", f"{key}={value}")]
        volumes = [
            flag
            for target, source in (files or {}).items()
            for flag in ("--volume", f"{source}:{target}:ro")
        ]
        subprocess.run(["buildah", "config", *env_flags, container], check=True)
        done = subprocess.run(
            [
                "buildah",
                "run",
                "--isolation",
                "chroot",
                "--user",
                user,
                *volumes,
                container,
                "--",
                *(command or entrypoint),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, _BUILDAH_NOISE.sub("", done.stderr))
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(image: str = IMAGE) -> Iterator[Path]:
    """The image's root filesystem, mounted read-only for a look (a throwaway container)."""
    container = subprocess.run(
        ["buildah", "from", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield Path(
            subprocess.run(
                ["buildah", "mount", container], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def venv_footprint(image: str = IMAGE) -> tuple[int, int]:
    """(bytes, files) of /opt/preflight: what the image adds on top of its base."""
    with mounted(image) as root:
        files = [
            p for p in (root / "opt/preflight").rglob("*") if p.is_file() and not p.is_symlink()
        ]
        return sum(p.stat().st_size for p in files), len(files)


def site_packages(image: str = IMAGE) -> str:
    """The venv's site-packages in the image (``python3.X`` is the base's Python)."""
    with mounted(image) as root:
        (found,) = (root / "opt/preflight/lib").glob("python3.*/site-packages")
        return "/" + str(found.relative_to(root))


def list_files(*paths: str) -> list[str]:
    """Which of ``paths`` exist in the image."""
    with mounted() as root:
        return [p for p in paths if (root / p.lstrip("/")).exists()]


def read_text(path: str) -> str:
    """A text file of the image (such as its CA bundle)."""
    with mounted() as root:
        return (root / path.lstrip("/")).read_text()
