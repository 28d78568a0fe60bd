"""The README's comparison with the usual tools, checked against a real server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support import cli, pg


def test_pg_isready_passes_a_role_that_cannot_log_in(plain_server: Any) -> None:
    """pg_isready says ready for a role that does not exist; the preflight exits 4."""
    bindir = pg.pg_bindir()
    assert bindir is not None
    probe = [
        str(bindir / "pg_isready"),
        *("-h", plain_server.host, "-p", str(plain_server.port)),
        *("-U", "no_such_role", "-d", pg.APP_DB),
    ]
    isready = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=30)
    assert isready.returncode == 0, isready.stdout + isready.stderr
    env = cli.base_env(
        SQL_HOST=plain_server.host,
        SQL_PORT=str(plain_server.port),
        SQL_DATABASE=pg.APP_DB,
        SQL_USER="no_such_role",
        SQL_PASSWORD="whatever-it-is",
        PREFLIGHT_TIMEOUT="10",
        PREFLIGHT_TERMINATION_LOG=str(Path("/dev/null")),
    )
    result = cli.run(env)
    assert result.code == 4
    assert result.event("preflight.failed")["reason"] == "auth_failed"
