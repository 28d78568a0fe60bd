"""Required extensions against real servers: dependencies, trust, privileges, races."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.test_check import app_env, run
from tests.support import cli
from tests.support.faults import wait_for
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, ServerFactory

VISITOR = "visitor"  # a login role without CREATE on the app database


def _installed(server: Any) -> set[str]:
    with server.admin(APP_DB) as conn:
        return {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}


def _superuser(server: Any) -> Any:
    """The app role made a superuser, as compose's POSTGRES_USER is."""
    with server.admin() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(APP_USER)))
    return server


def _message(server: Any, tmp_path: Path, **env: str) -> str:
    failed = run(app_env(server, tmp_path, **env), tmp_path, 7).event("preflight.failed")
    assert failed["reason"] == "extension_missing"
    return str(failed["message"])


def test_a_missing_dependency_is_exit_7_naming_it(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """earthdistance without cube, creation off (compose's superuser): exit 7 naming cube,
    and how to create both."""
    server = _superuser(make_server("needs-cube"))
    message = _message(server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="earthdistance")
    assert "earthdistance needs cube, not installed either" in message
    assert "CREATE EXTENSION earthdistance CASCADE" in message
    assert "set PREFLIGHT_CREATE_EXTENSIONS=true: this role may create it" in message


def test_creation_creates_the_dependencies_too(make_server: ServerFactory, tmp_path: Path) -> None:
    """With creation on, compose's superuser creates earthdistance and cube (CASCADE), where
    a plain CREATE EXTENSION failed on the missing cube."""
    server = _superuser(make_server("cascade"))
    env = app_env(
        server,
        tmp_path,
        PREFLIGHT_REQUIRE_EXTENSIONS="earthdistance",
        PREFLIGHT_CREATE_EXTENSIONS="true",
    )
    result = run(env, tmp_path, 0)
    assert result.event("preflight.ready")["extensions"]["created"] == ["earthdistance"]
    assert {"cube", "earthdistance"} <= _installed(server)


def test_an_untrusted_extension_says_who_can_create_it(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """pageinspect is not trusted: with creation on, the message says only a superuser can,
    and does not tell the user to set what is already set."""
    server = make_server("untrusted")
    message = _message(
        server,
        tmp_path,
        PREFLIGHT_REQUIRE_EXTENSIONS="pageinspect",
        PREFLIGHT_CREATE_EXTENSIONS="true",
    )
    assert f"role {APP_USER} may not create pageinspect" in message
    assert "not trusted, so only a superuser" in message
    assert "PREFLIGHT_CREATE_EXTENSIONS" not in message
    assert "pageinspect" not in _installed(server)


def test_a_role_without_create_privilege_is_told_who_can(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """hstore is trusted, but a role without CREATE on the database may not create it: the
    message names the database owner and the GRANT."""
    server = make_server("no-create")
    with server.admin(APP_DB) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(VISITOR), sql.Literal(APP_PASSWORD)
            )
        )
    message = _message(
        server,
        tmp_path,
        SQL_USER=VISITOR,
        PREFLIGHT_REQUIRE_EXTENSIONS="hstore",
        PREFLIGHT_CREATE_EXTENSIONS="true",
    )
    assert f"role {VISITOR} may not create hstore" in message
    assert f"its owner {APP_USER}" in message
    assert f"GRANT CREATE ON DATABASE {APP_DB} TO {VISITOR}" in message


GHOST = {
    "needs_ghost": "comment = 'test extension that needs one the server lacks'\n"
    "default_version = '0.0.0'\nrelocatable = true\ntrusted = true\n"
    "requires = 'ghost_dependency_x'\n"
}


@pytest.mark.root
def test_a_dependency_the_server_lacks_is_named(make_server: ServerFactory, tmp_path: Path) -> None:
    """An extension whose dependency is not on the server: exit 7 naming the dependency,
    even with creation on (nothing is attempted)."""
    server = make_server("ghost", extensions=GHOST)
    message = _message(
        server,
        tmp_path,
        PREFLIGHT_REQUIRE_EXTENSIONS="needs_ghost",
        PREFLIGHT_CREATE_EXTENSIONS="true",
    )
    assert "needs_ghost needs ghost_dependency_x, which the server does not have" in message


def _waiting_creators(server: Any) -> int:
    with server.admin(APP_DB) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'CREATE EXTENSION%%'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_concurrent_creators_both_end_ready(make_server: ServerFactory, tmp_path: Path) -> None:
    """Two replicas create hstore at the same moment: the loser's unique violation is
    retried as extension_create_race, and both exit 0."""
    server = make_server("race")
    envs = [
        app_env(
            server,
            tmp_path / str(n),
            PREFLIGHT_REQUIRE_EXTENSIONS="hstore",
            PREFLIGHT_CREATE_EXTENSIONS="true",
            PREFLIGHT_TIMEOUT="60",
        )
        for n in (1, 2)
    ]
    for n in (1, 2):
        (tmp_path / str(n)).mkdir()
    # A SHARE lock on pg_extension lets both read it (neither sees hstore) and holds both
    # at the insert; released together, one inserts first and the other collides.
    blocker = psycopg.connect(
        host=str(server.dir), port=server.port, user="postgres", dbname=APP_DB
    )
    try:
        blocker.execute("LOCK TABLE pg_catalog.pg_extension IN SHARE MODE")
        procs = [
            subprocess.Popen(
                cli.preflight_command(),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for env in envs
        ]
        assert wait_for(lambda: _waiting_creators(server) == 2, timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(cli.Run(proc.returncode, out, err, 0.0, cli.parse_events(err)))
    assert [r.code for r in results] == [0, 0], [r.stderr for r in results]
    reasons = [
        e["reason"] for r in results for e in r.events if e["event"] == "preflight.attempt_failed"
    ]
    assert reasons == ["extension_create_race"]
    assert "hstore" in _installed(server)
