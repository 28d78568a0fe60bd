"""Build the real Dockerfile with buildah and run its entrypoint as its own user."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
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


def build() -> None:
    """``scripts/image.sh build``: stand-in base from debootstrap, then buildah bud."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "image.sh"), "build"],
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE": IMAGE},
    )


def config() -> dict[str, object]:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", IMAGE], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout)["OCIv1"]["config"])


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def run(env: Mapping[str, str], *args: str, timeout: float = 120) -> Ran:
    """Run the image's ENTRYPOINT with ``args`` as the image's USER, with ``env``.

    buildah run does not apply ENTRYPOINT or USER itself, so both are read
    from the image's own configuration.
    """
    image_config = config()
    entrypoint = list(image_config["Entrypoint"])  # type: ignore[call-overload]
    user = str(image_config["User"])
    container = subprocess.run(
        ["buildah", "from", IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        env_flags = [flag for key, value in env.items() for flag in ("--env", f"{key}={value}")]
        subprocess.run(["buildah", "config", *env_flags, container], check=True)
        done = subprocess.run(
            [
                "buildah",
                "run",
                "--isolation",
                "chroot",
                "--user",
                user,
                container,
                "--",
                *entrypoint,
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


def venv_footprint() -> tuple[int, int]:
    """(bytes, files) of /opt/preflight: what the image adds on top of its base."""
    container = subprocess.run(
        ["buildah", "from", IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        mount = subprocess.run(
            ["buildah", "mount", container], capture_output=True, text=True, check=True
        ).stdout.strip()
        venv = Path(mount) / "opt" / "preflight"
        files = [p for p in venv.rglob("*") if p.is_file() and not p.is_symlink()]
        return sum(p.stat().st_size for p in files), len(files)
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def list_files(*paths: str) -> list[str]:
    """Which of ``paths`` exist in the image."""
    container = subprocess.run(
        ["buildah", "from", IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        mount = Path(
            subprocess.run(
                ["buildah", "mount", container], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        return [p for p in paths if (mount / p.lstrip("/")).exists()]
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
