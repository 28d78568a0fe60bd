"""4. The image: what the venv layer adds to its base (not part of the smoke)."""

from __future__ import annotations

import os
import subprocess

from benchmarks.common import Servers, verdict

TITLE = "4. The image"
SMOKE = False  # building the image takes minutes


def measure(servers: Servers) -> str:
    from tests.support import image as img

    if not img.buildah_available() or os.geteuid() != 0:
        return "Not measured: building the image needs root, buildah and debootstrap."
    img.build()
    size, files = img.venv_footprint()
    mb = size / 1e6
    top = subprocess.run(
        [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            _container(servers, img.IMAGE),
            "--",
            "python3",
            "-c",
            "import os,sys;r='/opt/preflight/lib/python3.11/site-packages';"
            "print('\\n'.join(f'{sum(os.path.getsize(os.path.join(d,f)) for d,_,fs in "
            "os.walk(os.path.join(r,n)) for f in fs)/1e6:6.2f} MB  {n}' "
            "for n in sorted(os.listdir(r))))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "\n".join(
        [
            f"- The venv layer (`/opt/preflight`, all the image adds to its base): "
            f"**{mb:.1f} MB in {files} files** — target ≤ 18 MB: "
            f"**{verdict(mb <= 18)}**.",
            "- What is in it (site-packages by package):",
            "",
            "```",
            top.strip(),
            "```",
            "",
            "No pip, setuptools or compiler: `tests/image/test_image.py` checks that. "
            "psycopg-binary carries its own libpq and OpenSSL (`psycopg_binary.libs`).",
        ]
    )


def _container(servers: Servers, name: str) -> str:
    ctr = subprocess.run(
        ["buildah", "from", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    servers.cleanups.append(
        lambda: subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
    )
    return ctr


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers)
