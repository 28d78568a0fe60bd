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
    assert "set PREFLIGHT_CREATE_EXTENSIONS=true: this role may create earthdistance" in message


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


def test_with_creation_off_the_message_names_which_this_role_may_create(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """hstore (trusted) and pageinspect (not): the advice to turn creation on names hstore
    only, and pageinspect gets who can create it."""
    server = make_server("mixed")
    message = _message(server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="hstore,pageinspect")
    assert "set PREFLIGHT_CREATE_EXTENSIONS=true: this role may create hstore)" in message
    assert f"role {APP_USER} may not create pageinspect" in message


def _visitor(server: Any) -> None:
    """A login role that neither owns the app database nor may create in it."""
    with server.admin(APP_DB) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(VISITOR), sql.Literal(APP_PASSWORD)
            )
        )


def test_a_role_without_create_privilege_is_told_who_can(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """hstore is trusted, but a role without CREATE on the database may not create it: the
    message names the database owner and the GRANT."""
    server = make_server("no-create")
    _visitor(server)
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


def test_a_role_granted_create_makes_a_trusted_extension(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """The GRANT the message above advises is enough: a plain role with CREATE on the
    database, not its owner, creates trusted hstore and ends ready."""
    server = make_server("granted")
    _visitor(server)
    with server.admin(APP_DB) as conn:
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(APP_DB), sql.Identifier(VISITOR)
            )
        )
    env = app_env(
        server,
        tmp_path,
        SQL_USER=VISITOR,
        PREFLIGHT_REQUIRE_EXTENSIONS="hstore",
        PREFLIGHT_CREATE_EXTENSIONS="true",
    )
    assert run(env, tmp_path, 0).event("preflight.ready")["extensions"]["created"] == ["hstore"]
    assert "hstore" in _installed(server)


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


def _creators_at_once(
    server: Any, tmp_path: Path, count: int, extension: str
) -> tuple[list[int], list[str]]:
    """``count`` replicas creating ``extension`` released at the same moment: their exit
    codes and the reasons of every failed attempt."""
    envs = []
    for n in range(count):
        (tmp_path / str(n)).mkdir()
        envs.append(
            app_env(
                server,
                tmp_path / str(n),
                PREFLIGHT_REQUIRE_EXTENSIONS=extension,
                PREFLIGHT_CREATE_EXTENSIONS="true",
                PREFLIGHT_TIMEOUT="60",
            )
        )
    # A SHARE lock on pg_extension lets all read it (none sees the extension) and holds
    # them at the insert; released together, one inserts first and the others collide.
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
        assert wait_for(lambda: _waiting_creators(server) == count, timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(cli.Run(proc.returncode, out, err, 0.0, cli.parse_events(err)))
    assert [r.code for r in results] == [0] * count, [r.stderr for r in results]
    reasons = [
        e["reason"] for r in results for e in r.events if e["event"] == "preflight.attempt_failed"
    ]
    return [r.code for r in results], reasons


def test_two_concurrent_creators_both_end_ready(make_server: ServerFactory, tmp_path: Path) -> None:
    """Two replicas create hstore at the same moment: the loser's unique violation is
    retried as extension_create_race, and both exit 0."""
    server = make_server("race")
    codes, reasons = _creators_at_once(server, tmp_path, 2, "hstore")
    assert codes == [0, 0]
    assert reasons == ["extension_create_race"]
    assert "hstore" in _installed(server)


def test_three_concurrent_creators_of_a_cascade(make_server: ServerFactory, tmp_path: Path) -> None:
    """Three replicas (compose's superuser) create earthdistance and, by CASCADE, its cube at
    the same moment: every collision is retried as a race, all three end ready."""
    server = _superuser(make_server("race-cascade"))
    codes, reasons = _creators_at_once(server, tmp_path, 3, "earthdistance")
    assert codes == [0, 0, 0]
    assert reasons == ["extension_create_race"] * 2  # both losers, once each
    assert {"cube", "earthdistance"} <= _installed(server)
