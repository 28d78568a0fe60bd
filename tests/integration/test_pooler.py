"""A real PgBouncer (what CloudNativePG's Pooler runs) in front of a test server.

PgBouncer accepts the client whatever the server behind it is doing, so the
check must look past the login: with the server down a query fails with
``server login has been failing, try again later (server_login_retry)`` or
waits ``query_wait_timeout``.  The messages PgBouncer 1.18 sends are pinned in
``test_pooler_messages`` for the classification table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import pg
from tests.support.ci import unavailable
from tests.support.cli import base_env, preflight_command, run, spawn
from tests.support.faults import wait_for
from tests.support.pg import ServerFactory
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary

MODES = ["session", "transaction"]
# Short enough that a test does not wait out PgBouncer's 15 s default.
FAST_RETRY = {"server_login_retry": 1}

PoolerFactory = Callable[..., PgBouncer]


@pytest.fixture
def make_pooler(workspace: Path) -> Iterator[PoolerFactory]:
    """Build PgBouncers in front of a server; all are destroyed afterwards."""
    if pgbouncer_binary() is None:
        unavailable("pgbouncer (Debian package pgbouncer) is not installed")
    made: list[PgBouncer] = []

    def make(server: pg.LocalServer, **options: Any) -> PgBouncer:
        pooler = PgBouncer(workspace, server.port, **options)
        made.append(pooler)
        pooler.start()
        return pooler

    yield make
    for pooler in made:
        pooler.destroy()


def env_for(pooler: PgBouncer, **extra: str) -> dict[str, str]:
    variables = {
        "SQL_HOST": pooler.host,
        "SQL_PORT": str(pooler.port),
        "SQL_DATABASE": pg.APP_DB,
        "SQL_USER": pg.APP_USER,
        "SQL_PASSWORD": pg.APP_PASSWORD,
        "SQL_SSL_MODE": "disable",
    }
    return base_env(**(variables | extra))


def app_connection(pooler: PgBouncer) -> psycopg.Connection[Any]:
    """The app's role logging in through the pooler, without TLS (PgBouncer's default)."""
    return psycopg.connect(
        host=pooler.host,
        port=pooler.port,
        dbname=pg.APP_DB,
        user=pg.APP_USER,
        password=pg.APP_PASSWORD,
        sslmode="disable",
    )


def queued(pooler: PgBouncer) -> bool:
    """A client waits in PgBouncer's queue for the app database, and PgBouncer has failed
    to reach the server twice (the pooler needs ``stats_users`` naming the app's role)."""
    with psycopg.connect(
        host=pooler.host,
        port=pooler.port,
        dbname="pgbouncer",
        user=pg.APP_USER,
        password=pg.APP_PASSWORD,
        sslmode="disable",
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,  # the admin console takes simple queries only
    ) as admin:
        cursor = admin.execute("SHOW POOLS")
        columns = [column.name for column in cursor.description or ()]
        pools = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    waiting = sum(p["cl_waiting"] for p in pools if p["database"] == pg.APP_DB)
    return waiting > 0 and pooler.log_text().count("closing because: connect failed") >= 2


def warm(pooler: PgBouncer) -> None:
    """One query through the pooler, so that it has met the server (as in production)."""
    with app_connection(pooler) as conn:
        conn.execute("SELECT 1")


@pytest.mark.parametrize("mode", MODES)
def test_waits_for_server_behind_pooler(
    mode: str, make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """Server down behind PgBouncer: the check waits, then exits 0 once the server is up."""
    server = make_server("pooled")
    pooler = make_pooler(
        server, pool_mode=mode, settings={**FAST_RETRY, "stats_users": pg.APP_USER}
    )
    warm(pooler)
    server.stop()
    proc = spawn(preflight_command(), env_for(pooler, PREFLIGHT_TIMEOUT="40"))
    proc.wait_for_event("preflight.plan")
    assert wait_for(lambda: queued(pooler), 30), "the check never waited in PgBouncer's queue"
    assert proc.poll() is None, "the check ended while the server was down"
    server.start()
    up = time.monotonic()
    result = proc.finish(timeout=60)
    assert result.code == 0, result.stderr
    assert result.events[-1]["event"] == "preflight.ready"
    # server_login_retry (1 s) plus the retry delay; generous for a shared machine.
    assert time.monotonic() - up <= 8, "the check noticed the server too late"


def test_pooler_errors_while_the_server_is_down_are_retried(
    make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """PgBouncer's own answers for a server it cannot reach (query_wait_timeout, then
    "server login has been failing") are pooler_waiting, retried, then exit 0."""
    server = make_server("poolerrors")
    pooler = make_pooler(server, settings={"query_wait_timeout": 1, **FAST_RETRY})
    warm(pooler)
    server.stop()
    proc = spawn(preflight_command(), env_for(pooler, PREFLIGHT_TIMEOUT="40"))
    proc.wait_for_event("preflight.attempt_failed", count=2, reason="pooler_waiting")
    server.start()
    result = proc.finish(timeout=60)
    assert result.code == 0, result.stderr
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert reasons == {"pooler_waiting"}


@pytest.mark.parametrize("mode", MODES)
def test_server_down_behind_pooler_keeps_the_deadline(
    mode: str, make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """PgBouncer holds a query for query_wait_timeout (120 s): the deadline still holds."""
    server = make_server("pooledwait")
    pooler = make_pooler(server, pool_mode=mode)  # PgBouncer's defaults, as a Pooler has
    warm(pooler)
    server.stop()
    result = run(env_for(pooler, PREFLIGHT_TIMEOUT="3"), timeout=30)
    assert result.code == 10, result.stderr
    assert result.seconds <= 5.0, f"took {result.seconds:.1f} s"


@pytest.mark.parametrize("mode", MODES)
def test_pooler_down_then_up(
    mode: str, make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """The pooler itself restarting (a Pooler rollout): the check waits and exits 0."""
    server = make_server("poolerdown")
    pooler = make_pooler(server, pool_mode=mode, settings=FAST_RETRY)
    pooler.stop()
    proc = spawn(preflight_command(), env_for(pooler, PREFLIGHT_TIMEOUT="40"))
    proc.wait_for_event("preflight.attempt_failed", count=2, reason="refused")
    pooler.start()
    result = proc.finish(timeout=60)
    assert result.code == 0, result.stderr
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert "refused" in reasons


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
@pytest.mark.parametrize("mode", MODES)
def test_wrong_password_through_pooler(
    mode: str, auth_type: str, make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """A wrong password through PgBouncer is exit 4 at once, for SCRAM and md5 clients."""
    server = make_server("pooledauth")
    pooler = make_pooler(server, pool_mode=mode, settings={"auth_type": auth_type})
    env = env_for(pooler, PREFLIGHT_TIMEOUT="20")
    env["SQL_PASSWORD"] = "not-the-password"
    result = run(env, timeout=60)
    assert result.code == 4, result.stderr
    failed = result.event("preflight.failed")
    assert failed["reason"] == "auth_failed"
    assert failed["attempts"] == 1


def _hold(pooler: PgBouncer) -> psycopg.Connection[Any]:
    """The pooler's one client slot, taken (PgBouncer may still count the readiness
    probe's closed connection for a moment, so try a few times)."""
    for _ in range(50):
        try:
            return app_connection(pooler)
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("could not take the pooler's client slot")


def test_pooler_client_limit_is_retried(
    make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """PgBouncer's max_client_conn is a full pooler, retried as too_many_clients."""
    server = make_server("poolfull")
    pooler = make_pooler(server, settings={"max_client_conn": 1})
    hold = _hold(pooler)
    try:
        result = run(env_for(pooler, PREFLIGHT_TIMEOUT="2"), timeout=30)
    finally:
        hold.close()
    assert result.code == 10, result.stderr
    assert result.event("preflight.failed")["reason"] == "too_many_clients"


def test_pooler_unknown_database_is_exit_5(
    make_server: ServerFactory, make_pooler: PoolerFactory
) -> None:
    """A database the pooler does not know (``no such database``) is exit 5 at once."""
    server = make_server("pooldb")
    pooler = make_pooler(server)
    result = run(env_for(pooler, SQL_DATABASE="nosuch", PREFLIGHT_TIMEOUT="20"), timeout=60)
    assert result.code == 5, result.stderr
    assert result.event("preflight.failed")["attempts"] == 1


def _error_text(exc: psycopg.Error) -> str:
    if exc.pgconn is not None and exc.pgconn.error_message:
        return exc.pgconn.error_message.decode()
    return str(exc)


def _try(pooler: PgBouncer, password: str = pg.APP_PASSWORD, **options: Any) -> str:
    try:
        with psycopg.connect(
            host=pooler.host,
            port=pooler.port,
            user=pg.APP_USER,
            password=password,
            connect_timeout=5,
            **{"dbname": pg.APP_DB, "sslmode": "disable", **options},
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return _error_text(exc)
    return "ok"


def test_pooler_messages(make_server: ServerFactory, make_pooler: PoolerFactory) -> None:
    """The exact texts PgBouncer sends, as the classification table must know them."""
    server = make_server("poolmsg")
    scram = make_pooler(server, settings={"query_wait_timeout": 2, **FAST_RETRY})
    md5 = make_pooler(server, settings={"auth_type": "md5", "max_client_conn": 1})
    assert "FATAL:  SASL authentication failed" in _try(scram, password="wrong")
    assert "FATAL:  password authentication failed" in _try(md5, password="wrong")
    assert "FATAL:  no such database: nosuch" in _try(md5, dbname="nosuch")
    assert "FATAL:  unsupported startup parameter: options" in _try(
        md5, options="-c statement_timeout=1000"
    )
    assert "server does not support SSL, but SSL was required" in _try(md5, sslmode="require")
    with _hold(md5):
        assert "FATAL:  no more connections allowed (max_client_conn)" in _try(md5)
    warm(scram)
    server.stop()
    # The first client waits query_wait_timeout, later ones get the cached failure.
    assert _try(scram) == "query_wait_timeout"
    assert _try(scram) == "server login has been failing, try again later (server_login_retry)"
