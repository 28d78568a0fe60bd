"""Debian trixie roots (``scripts/trixie.sh``): Python 3.13 and PostgreSQL 17 with pgvector.

This machine is Debian 12, whose Python (3.11) cannot run Django 6.0 and whose
PostgreSQL (15) has no pgvector.  The roots are built once, on demand, under
``/var/tmp/preflight-trixie`` (``PREFLIGHT_TRIXIE_CACHE``), and shared by the
agreement matrix and the image tests (the ``base`` root is the image's
stand-in base).  A command runs in a root through :func:`command`: a chroot
inside a private mount namespace that sees this machine's /tmp, the checkout,
the app venv cache, /etc/hosts, resolv.conf and CA bundle (so a namespace set
up by ``cli.isolated`` reaches inside).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PREFLIGHT_TRIXIE_CACHE", "/var/tmp/preflight-trixie"))
SCRIPT = REPO / "scripts" / "trixie.sh"
# Run inside a private mount namespace: $1 root, $2 working directory, $3 userspec
# ("" for root), $4 directories to share (colon-separated), then the command.
# The chroot sees this machine's hosts, resolv.conf, CA bundle and pip config in
# place of its own (after cli.isolated has bound its stand-ins over them, those).
_ENTER = """
root=$1; cwd=$2; userspec=$3; shared=$4; shift 4
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || mount --rbind /dev "$root/dev"
for file in /etc/hosts /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
  [ -e "$file" ] || continue
  [ -e "$root$file" ] || touch "$root$file"
  mount --bind "$file" "$root$file"
done
IFS=:
for dir in $shared; do
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
done
unset IFS
set -- sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
if [ -n "$userspec" ]; then exec chroot --userspec="$userspec" "$root" "$@"; fi
exec chroot "$root" "$@"
"""


def unavailable_because() -> str | None:
    """Why the roots cannot be built or entered here, or None."""
    if os.geteuid() != 0:
        return "a debootstrap root needs root"
    missing = [tool for tool in ("debootstrap", "unshare", "chroot") if not shutil.which(tool)]
    if missing:
        return f"a debootstrap root needs {', '.join(missing)}"
    return None


@functools.cache
def root(kind: str) -> Path:
    """The cached root ``base`` or ``server``, built first if missing (raises on failure)."""
    from tests.support.appvenv import locked

    with locked(CACHE.parent / f"{CACHE.name}.lock"):
        subprocess.run(
            ["bash", str(SCRIPT), kind],
            check=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PREFLIGHT_TRIXIE_CACHE": str(CACHE)},
        )
    return CACHE / kind


def shared_directories() -> tuple[str, ...]:
    """What a command in a root sees of this machine: temp files, the checkout,
    the app venv cache."""
    from tests.support import appvenv

    appvenv.CACHE.mkdir(parents=True, exist_ok=True)
    return (tempfile.gettempdir(), str(REPO), str(appvenv.CACHE))


def enter(
    where: Path, command: Sequence[str], *, cwd: Path | str = "/", user: str = ""
) -> list[str]:
    """``command`` chrooted into ``where``; run it inside a private mount namespace.

    ``user`` is a chroot ``--userspec`` (``UID:GID``), empty for root.
    """
    shared = ":".join(shared_directories())
    return ["sh", "-c", _ENTER, "sh", str(where), str(cwd), user, shared, *command]


def command(
    where: Path, argv: Sequence[str], *, cwd: Path | str = "/", user: str = ""
) -> list[str]:
    """``argv`` in ``where``, in a private mount namespace of its own."""
    from tests.support.cli import unshare

    return unshare('exec "$@"', enter(where, argv, cwd=cwd, user=user))
