"""The migrate runner under faults: what issue 15 promises, against a real server.

Each scenario runs under both app cells of test_migrate.py (balancer's Django
4.2.3 + psycopg2-binary 2.9.6, and Django 5.2 + psycopg 3), with the real
``python -m preflight.django migrate`` children, and judges them by the
server's own records: ``django_migrations`` (no duplicate), the rows the
migrations write (``slow_applied``: one per committed application of
``ledger.0002_slow``; ``ledger_marker``: one per application of
``0003_seed``) and ``pg_locks`` (no advisory lock left behind).

Timeouts are short (``--timeout 3`` where a deadline is the point); the
freeze scenario waits for the server to notice a vanished peer, which the
runner bounds with TCP keepalives on its sessions (about a minute at most).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import appvenv, cli, faults, pg
from tests.support import migrate as m
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary

TIMEOUT = 3.0
# The bound for a dead peer's lock: "within about a minute, not hours".
DEAD_PEER_SECONDS = 75.0


@pytest.fixture
def server(migrate_server: pg.LocalServer) -> pg.LocalServer:
    return migrate_server


@pytest.fixture
def venv(app_venv: appvenv.AppVenv) -> appvenv.AppVenv:
    return app_venv


@pytest.fixture
def database(server: pg.LocalServer) -> Iterator[str]:
    """A new database (with ``slow_applied``), dropped afterwards with its sessions."""
    name = m.new_database(server)
    yield name
    m.drop_database(server, name)


def env_for(server: pg.LocalServer, database: str, **extra: str) -> dict[str, str]:
    return m.app_env(server.host, server.port, database, DJANGOAPP_SLOW_RECORD="1", **extra)


def assert_applied_once(server: pg.LocalServer, database: str) -> None:
    """Every migration recorded once, the slow one and the seed committed once."""
    recorded = m.recorded(server, database)
    assert sorted(recorded) == sorted(m.MIGRATIONS), recorded
    assert m.slow_applications(server, database) == 1
    assert m.seed_rows(server, database) == 1


def assert_no_lock_left(server: pg.LocalServer) -> None:
    locks = m.advisory_locks(server)
    assert locks == [], f"advisory locks left on the server: {locks}"


def assert_names_phase(failed: dict[str, Any], *words: str) -> None:
    """The failure names the phase it was in (any of ``words``)."""
    text = json.dumps(failed).lower()
    assert any(word in text for word in words), f"no phase ({words}) named in {failed}"


def direct_check(
    venv: appvenv.AppVenv, server: pg.LocalServer, database: str, tmp_path: Path
) -> cli.Run:
    """``migrate --check`` straight to the server (no pooler, no proxy)."""
    runner = m.Runner(
        venv, env_for(server, database), tmp_path / "direct-check.log", "--check", "--timeout", "10"
    )
    return runner.finish(timeout=60)


def test_idle_session_timeout_role(
    venv: appvenv.AppVenv, server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """A role with idle_session_timeout = 1 s, a 4 s migration and three runners: every
    runner exits 0 and each migration is applied exactly once."""
    with server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} IN DATABASE {} SET idle_session_timeout = '1s'").format(
                psycopg.sql.Identifier(pg.APP_USER), psycopg.sql.Identifier(database)
            )
        )
    # The fault is live: an idle session of the role in that database is ended.
    with m.stranger(server, database) as idle:
        pid = idle.info.backend_pid
        assert faults.wait_for(lambda: pid not in m.sessions_in(server, database), 10)
    env = env_for(server, database, DJANGOAPP_SLOW_SECONDS="4")
    runners = [m.Runner(venv, env, tmp_path / f"runner-{n}.log") for n in range(3)]
    results = [runner.finish() for runner in runners]

    assert [r.code for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert_applied_once(server, database)
    assert_no_lock_left(server)
    waited = [e for r in results for e in r.events if e["event"].endswith(".waiting")]
    assert waited, "no runner waited: the runs did not overlap"


@pytest.fixture
def bouncer(workspace: Path, server: pg.LocalServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the module's server (any database)."""
    if pgbouncer_binary() is None:
        pytest.fail("pgbouncer is not installed (Debian package pgbouncer)")
    pooler = PgBouncer(workspace, server.port, pool_mode="transaction", any_database=True)
    pooler.start()
    yield pooler
    pooler.destroy()


def test_transaction_pooler(
    venv: appvenv.AppVenv,
    server: pg.LocalServer,
    bouncer: PgBouncer,
    database: str,
    tmp_path: Path,
) -> None:
    """Three runners through PgBouncer in transaction mode, each with a --then that records
    when it ran: either they serialise (no overlap, applied once) or every one refuses
    with the pooler reason naming the pooler; no advisory lock is left on the server, and
    a direct --check then passes."""
    env = m.app_env(
        bouncer.host,
        bouncer.port,
        database,
        DJANGOAPP_SLOW_SECONDS="2",
        DJANGOAPP_SLOW_RECORD="1",
    )
    runners = [
        m.Runner(venv, env, tmp_path / f"runner-{n}.log", "--then", "visit", "--timeout", "60")
        for n in range(3)
    ]
    results = [runner.finish() for runner in runners]
    codes = [r.code for r in results]
    # Whatever happened, nothing of it may hold a lock on the server now (PgBouncer is
    # still up, its server connections still open).
    assert_no_lock_left(server)

    if codes == [0, 0, 0]:
        assert_applied_once(server, database)
        visits = m.fetch(
            server, database, "SELECT started, finished FROM ledger_visit ORDER BY started"
        )
        assert len(visits) == 3
        for (_, end), (begin, _) in itertools.pairwise(visits):
            assert end <= begin, "two follow-up commands ran at the same time"
    else:
        reasons = [r.events[-1].get("reason") for r in results if r.events]
        assert 0 not in codes, f"mixed outcome through the pooler: exits {codes}, {reasons}"
        failures = [m.failed_event(r) for r in results]
        assert len(set(codes)) == 1, codes
        assert codes[0] not in (0, 10), codes
        assert all("pooler" in str(f["reason"]) for f in failures), failures
        assert all("pooler" in str(f["message"]).lower() for f in failures), failures
        assert m.recorded(server, database) == [], "a refusing runner migrated"
        direct = m.Runner(venv, env_for(server, database), tmp_path / "direct.log")
        assert direct.finish(timeout=60).code == 0
    check = direct_check(venv, server, database, tmp_path)
    assert check.code == 0, check.stderr


@pytest.mark.parametrize("check", [False, True], ids=["migrate", "check"])
def test_stalled_server_during_connect(venv: appvenv.AppVenv, tmp_path: Path, check: bool) -> None:
    """A server that accepts, answers the SSLRequest and then says nothing: migrate and
    migrate --check exit 10 within --timeout + 1 s, naming the connection phase."""
    proxy = faults.Proxy(("127.0.0.1", pg.free_port()), mode=faults.HANDSHAKE_STALL)
    try:
        env = m.app_env(proxy.host, proxy.port, pg.APP_DB, SQL_SSL_MODE="prefer")
        args = ["--timeout", f"{TIMEOUT:g}", *(["--check"] if check else [])]
        runner = m.Runner(venv, env, tmp_path / "runner.log", *args)
        result = runner.finish(timeout=TIMEOUT + 30)
    finally:
        proxy.close()
    assert proxy.cuts >= 1, "the runner never reached the stalled server"
    assert result.code == 10, result.stderr
    assert runner.overrun(TIMEOUT) <= 1.0, result.stderr
    assert_names_phase(m.failed_event(result), "connect")


@pytest.mark.parametrize("check", [False, True], ids=["migrate", "check"])
def test_network_freezes_during_the_lock_wait(
    venv: appvenv.AppVenv, server: pg.LocalServer, database: str, tmp_path: Path, check: bool
) -> None:
    """The network freezes (nothing forwarded, nothing closed) while the runner waits for a
    lock someone else holds: it exits 10 within --timeout + 1 s, naming what it waited for."""
    proxy = faults.Proxy((server.host, server.port))
    try:
        with m.stranger(server, database):
            env = m.app_env(proxy.host, proxy.port, database)
            args = ["--timeout", f"{TIMEOUT:g}", *(["--check"] if check else [])]
            runner = m.Runner(venv, env, tmp_path / "runner.log", *args)
            runner.wait_event("preflight.migrate.waiting", timeout=30)
            proxy.freeze()
            result = runner.finish(timeout=TIMEOUT + 30)
    finally:
        proxy.close()
    assert result.code == 10, result.stderr
    assert runner.overrun(TIMEOUT) <= 1.0, result.stderr
    assert_names_phase(m.failed_event(result), "lock", "schema", "wait")
    assert m.recorded(server, database) == []


def test_stranger_holds_the_lock(
    venv: appvenv.AppVenv, server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """A plain session holds the runner's lock: the waiting runner names the holder
    (pid, application_name, client address, state, since when) and exits 10 at its
    deadline, within --timeout + 1 s, having applied nothing."""
    with m.stranger(server, database) as conn:
        pid = conn.info.backend_pid
        runner = m.Runner(
            venv, env_for(server, database), tmp_path / "runner.log", "--timeout", f"{TIMEOUT:g}"
        )
        result = runner.finish(timeout=TIMEOUT + 30)
    assert result.code == 10, result.stderr
    assert runner.overrun(TIMEOUT) <= 1.0, result.stderr
    waiting = [e for e in result.events if e["event"] == "preflight.migrate.waiting"]
    assert waiting, result.stderr
    said = json.dumps([*waiting, m.failed_event(result)])
    for fact in (str(pid), m.STRANGER, "127.0.0.1", "idle"):
        assert fact in said, f"{fact} not named: {said}"
    assert "since" in said or "state_change" in said or "backend_start" in said, said
    assert m.failed_event(result)["reason"] == "migration_lock_held"
    assert m.recorded(server, database) == []


@pytest.mark.root
def test_frozen_holder_then_killed(
    venv: appvenv.AppVenv, server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """The network to the lock holder freezes mid-migration (no FIN, no RST), then the
    holder is killed: its lock frees within about a minute, a second runner then applies
    each migration once, and the frozen runner never exits 0."""
    proxy = faults.Proxy((server.host, server.port))
    runners: list[m.Runner] = []
    try:
        holder = m.Runner(
            venv,
            m.app_env(
                proxy.host,
                proxy.port,
                database,
                DJANGOAPP_SLOW_SECONDS="600",
                DJANGOAPP_SLOW_RECORD="1",
            ),
            tmp_path / "holder.log",
            "--timeout",
            "0",
        )
        runners.append(holder)
        assert faults.wait_for(
            lambda: m.sessions_in(server, database, "query LIKE '%%pg_sleep%%'"), 60, step=0.1
        ), holder.text()
        second = m.Runner(
            venv,
            env_for(server, database, DJANGOAPP_SLOW_SECONDS="1"),
            tmp_path / "second.log",
            "--timeout",
            "0",
        )
        runners.append(second)
        second.wait_event("preflight.migrate.waiting", timeout=60)
        proxy.freeze(vanish_upstream=True)
        frozen_at = time.monotonic()
        # The frozen runner may notice on its own (it must not say 0); then it is killed.
        faults.wait_for(lambda: holder.proc.poll() is not None, 5, step=0.1)
        holder.kill()
        frozen = holder.finish(timeout=30)
        locked = second.wait_event("preflight.migrate.locked", timeout=DEAD_PEER_SECONDS + 30)
        result = second.finish(timeout=120)
    finally:
        proxy.close()
        for runner in runners:
            runner.kill()
    assert frozen.code != 0, frozen.stderr
    assert result.code == 0, result.stderr
    freed_after = m.monotonic(locked) - frozen_at
    assert freed_after <= DEAD_PEER_SECONDS, f"the lock freed {freed_after:.0f} s after the freeze"
    assert_applied_once(server, database)
    assert_no_lock_left(server)
