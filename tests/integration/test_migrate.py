"""``python -m preflight.django migrate``: migrations once under an advisory lock.

Every run is the real command against a real server, on the test project in
tests/fixtures/djangoapp, under both drivers: in an app venv with balancer's
pins (Django 4.2.3 + psycopg2-binary 2.9.6: no psycopg 3, no structlog, so the
runner provably needs neither), and in the test venv (Django 5.2 + psycopg 3,
where coverage measures it).  Each test gets its own database.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from preflight.django._lock import LOCK_KEY_SQL, lock_key
from tests.support import appvenv, cli, pg
from tests.support import migrate as m

# A list: the runner reports what it applied as a JSON array.
MIGRATIONS = list(m.MIGRATIONS)
_numbers = itertools.count()
# A runner of this test's database is inside the slow migration.
SLEEPING = (
    "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'"
    " AND datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture
def database(migrate_server: pg.LocalServer) -> str:
    """A new, empty database owned by the app's role."""
    name = f"mig_{os.getpid()}_{next(_numbers)}"
    with migrate_server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(pg.APP_USER)
            )
        )
    return name


def app_env(server: pg.LocalServer, database: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The app's environment, with the termination message kept in ``tmp_path``."""
    log = {"PREFLIGHT_TERMINATION_LOG": str(tmp_path / "termination-log")}
    return m.app_env(server.host, server.port, database, **(log | extra))


def command(venv: appvenv.AppVenv, *args: str) -> list[str]:
    return appvenv.app_command(venv, "-m", "preflight.django", "migrate", *args)


def start(venv: appvenv.AppVenv, env: dict[str, str], log: Path, *args: str) -> Any:
    """Start a runner with stderr going to ``log`` (read while it runs)."""
    with open(log, "w") as stderr:
        return subprocess.Popen(
            command(venv, *args),
            cwd=appvenv.DJANGOAPP,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def run(venv: appvenv.AppVenv, env: dict[str, str], *args: str) -> cli.Run:
    began = time.monotonic()
    done = subprocess.run(
        command(venv, *args),
        cwd=appvenv.DJANGOAPP,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return finished(done.returncode, done.stdout, done.stderr, began)


def finished(code: int, stdout: str, stderr: str, began: float = 0.0) -> cli.Run:
    """Parse stderr (every line a JSON event) and check no password shows."""
    cli.assert_no_secret(pg.APP_PASSWORD, stdout, stderr)
    result = cli.finished(code, stdout, stderr, time.monotonic() - began)
    assert all(e["event"].startswith("preflight.migrate.") for e in result.events), stderr
    return result


def collect(proc: Any, log: Path) -> cli.Run:
    stdout, _ = proc.communicate(timeout=180)
    return finished(proc.returncode, stdout, log.read_text())


def wait_for(log: Path, text: str, timeout: float = 60) -> None:
    """Until ``text`` appears in the runner's stderr."""
    end = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < end, f"{text} not in {log.read_text()}"
        time.sleep(0.05)


def stamp(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def driver_name(venv: appvenv.AppVenv) -> str:
    return "psycopg2" if "psycopg2" in venv.spec.driver else "psycopg"


def test_five_concurrent_runs_migrate_once(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """Five runners at once: all exit 0, one applies everything, the row exists once,
    each follow-up command runs alone, and the server logs no error."""
    log_before = len(migrate_server.log_text())
    env = app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS="2")
    logs = [tmp_path / f"runner-{n}.log" for n in range(5)]
    procs = [start(app_venv, env, log, "--then", "visit") for log in logs]
    results = [collect(proc, log) for proc, log in zip(procs, logs, strict=True)]

    assert [r.code for r in results] == [0] * 5, [r.stderr for r in results]
    assert {r.event("preflight.migrate.plan")["driver"] for r in results} == {driver_name(app_venv)}
    applied = sorted((r.event("preflight.migrate.migrated")["applied"] for r in results), key=len)
    assert applied == [[], [], [], [], MIGRATIONS]
    waiting = [e for r in results for e in r.events if e["event"] == "preflight.migrate.waiting"]
    assert waiting, "nobody waited for the lock"
    assert all(e["reason"] == "migration_lock_held" and e["waited"] >= 0 for e in waiting)
    assert max(r.event("preflight.migrate.locked")["waited"] for r in results) >= 2

    assert m.fetch(migrate_server, database, "SELECT name FROM ledger_marker") == [("seed",)]
    recorded = m.fetch(migrate_server, database, "SELECT app || '.' || name FROM django_migrations")
    assert sorted(row[0] for row in recorded) == MIGRATIONS
    visits = m.fetch(
        migrate_server, database, "SELECT started, finished FROM ledger_visit ORDER BY started"
    )
    assert len(visits) == 5
    for (_, end), (begin, _) in itertools.pairwise(visits):
        assert end <= begin, "two follow-up commands ran at the same time"
    new_log = migrate_server.log_text()[log_before:]
    assert "ERROR:" not in new_log, new_log


def test_killed_holder_releases_the_lock(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """SIGKILL the holder mid-migration: the waiter takes over and the schema is whole."""
    holder_log, waiter_log = tmp_path / "holder.log", tmp_path / "waiter.log"
    holder = start(
        app_venv,
        app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS="60"),
        holder_log,
    )
    try:
        deadline = time.monotonic() + 60
        while not m.fetch(migrate_server, database, SLEEPING):
            assert time.monotonic() < deadline, holder_log.read_text()
            time.sleep(0.1)
        waiter = start(app_venv, app_env(migrate_server, database, tmp_path), waiter_log)
        wait_for(waiter_log, "preflight.migrate.waiting")
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    result = collect(waiter, waiter_log)

    assert result.code == 0, result.stderr
    assert result.event("preflight.migrate.migrated")["applied"] == MIGRATIONS[1:]
    assert m.fetch(migrate_server, database, "SELECT name, note FROM ledger_marker") == [
        ("seed", "")
    ]
    recorded = m.fetch(migrate_server, database, "SELECT app || '.' || name FROM django_migrations")
    assert sorted(row[0] for row in recorded) == MIGRATIONS
    check = subprocess.run(
        appvenv.app_command(app_venv, "manage.py", "migrate", "--check"),
        cwd=appvenv.DJANGOAPP,
        env=app_env(migrate_server, database, tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_waits_for_the_last_migration(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """--check waits while migrations are pending and exits 0 soon after the migrator is done."""
    check_log, migrate_log = tmp_path / "check.log", tmp_path / "migrate.log"
    checker = start(app_venv, app_env(migrate_server, database, tmp_path), check_log, "--check")
    wait_for(check_log, "migrations_pending")
    migrator = start(
        app_venv,
        app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS="2"),
        migrate_log,
    )
    migrated = collect(migrator, migrate_log)
    checked = collect(checker, check_log)

    assert (migrated.code, checked.code) == (0, 0), checked.stderr
    waiting = checked.event("preflight.migrate.waiting")
    assert waiting["reason"] == "migrations_pending"
    assert waiting["unapplied"] == MIGRATIONS
    (last_applied,) = m.fetch(
        migrate_server, database, "SELECT max(applied) FROM django_migrations"
    )[0]
    current = stamp(checked.event("preflight.migrate.current"))
    assert current >= last_applied
    assert current >= stamp(migrated.event("preflight.migrate.migrated"))
    # Polled every 0.25-0.3 s; a generous margin for a loaded machine (RESULTS.md has figures).
    assert (current - last_applied).total_seconds() < 5


def test_check_deadline_lists_unapplied(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """--check at its deadline: exit 10, the reason lists every unapplied migration."""
    result = run(
        app_venv, app_env(migrate_server, database, tmp_path, PREFLIGHT_TIMEOUT="1"), "--check"
    )
    assert result.code == 10
    failed = result.event("preflight.migrate.failed")
    assert (failed["class"], failed["reason"]) == ("unreachable", "migrations_pending")
    assert all(name in failed["message"] for name in MIGRATIONS)
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("unreachable (migrations_pending): 4 migration(s) not applied")


def test_lock_wait_deadline_and_holder(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """A stranger holds the lock: the waiter names it (pid, application_name, client
    address, state, since when) and exits 10 at the deadline naming the phase.  The key
    is the documented one, and the server computes the same."""
    with migrate_server.admin(database) as conn:
        assert conn.execute(LOCK_KEY_SQL).fetchone() == (lock_key(database),)
    with m.stranger(migrate_server, database) as conn:  # over TCP, named m.STRANGER, holding it
        pid = conn.info.backend_pid
        result = run(app_venv, app_env(migrate_server, database, tmp_path, PREFLIGHT_TIMEOUT="2"))
    assert result.code == 10
    waiting = result.event("preflight.migrate.waiting")
    assert waiting["holder_pid"] == pid
    assert waiting["holder_application_name"] == m.STRANGER
    assert waiting["holder_client_addr"] == "127.0.0.1"
    assert waiting["holder_state"] == "idle"
    assert stamp({"timestamp": waiting["holder_since"]}) <= stamp(waiting)
    failed = result.event("preflight.migrate.failed")
    assert (failed["reason"], failed["phase"]) == ("migration_lock_held", "lock")
    assert "waiting for the migration lock" in failed["message"]
    assert f"pid {pid} ({m.STRANGER}" in failed["message"]
    assert 2 <= failed["elapsed"] < 3.5  # the deadline, plus at most a poll and a margin
    assert m.fetch(migrate_server, database, "SELECT to_regclass('django_migrations')") == [(None,)]


@pytest.mark.parametrize(
    ("signum", "code", "slow"),
    [(signal.SIGTERM, 143, "60"), (signal.SIGINT, 130, "0")],
    ids=["sigterm-migrating", "sigint-waiting"],
)
def test_signal_stops_within_a_second(
    app_venv: appvenv.AppVenv,
    migrate_server: pg.LocalServer,
    database: str,
    tmp_path: Path,
    signum: int,
    code: int,
    slow: str,
) -> None:
    """SIGTERM in the middle of a long migration statement, SIGINT while waiting for
    the lock: the runner stops at once with 143 / 130 and the migration is rolled back."""
    log = tmp_path / "runner.log"
    env = app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS=slow)
    with migrate_server.admin(database) as conn:
        if slow == "0":
            conn.execute("SELECT pg_advisory_lock(%s)", [lock_key(database)])
        proc = start(app_venv, env, log)
        wait_for(log, "preflight.migrate.waiting" if slow == "0" else "preflight.migrate.locked")
        if slow != "0":
            deadline = time.monotonic() + 60
            while not conn.execute(SLEEPING).fetchall():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.communicate(timeout=30)
        stopped = time.monotonic() - sent
    result = finished(proc.returncode, "", log.read_text())
    assert result.code == code
    assert result.event("preflight.migrate.interrupted")["exit_code"] == code
    assert stopped < 5  # the runner acts within 1 s; a margin for a loaded machine
    if slow == "0":  # it never got the lock, so it never touched the schema
        assert m.fetch(migrate_server, database, "SELECT to_regclass('django_migrations')") == [
            (None,)
        ]
    else:  # the migration it was in was rolled back
        recorded = m.fetch(migrate_server, database, "SELECT name FROM django_migrations")
        assert ("0001_initial",) in recorded
        assert ("0002_slow",) not in recorded


def test_failed_migration_exits_7(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """A migration that fails (type hstore missing) exits 7, and the lock is released."""
    env = app_env(migrate_server, database, tmp_path, DJANGOAPP_TAGGED="1")
    result = run(app_venv, env)
    assert result.code == 7, result.stderr
    failed = result.event("preflight.migrate.failed")
    assert (failed["class"], failed["reason"]) == ("check_failed", "migration_failed")
    assert 'type "hstore" does not exist' in failed["message"]
    locks = m.fetch(
        migrate_server, database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    )
    assert locks == [(0,)]


def test_follow_up_status_is_passed_on(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """--then commands run in order under the lock; a failing one's status is the exit code."""
    result = run(
        app_venv,
        app_env(migrate_server, database, tmp_path),
        "--then",
        "visit",
        "--then",
        "failwith 3",
    )
    assert result.code == 3
    failed = result.event("preflight.migrate.command_failed")
    assert (failed["command"], failed["exit_code"]) == ("failwith", 3)
    assert result.names().index("preflight.migrate.command") < result.names().index(
        "preflight.migrate.command_failed"
    )
    assert m.fetch(migrate_server, database, "SELECT count(*) FROM ledger_visit") == [(1,)]


def test_follow_up_status_256_is_not_success(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """A follow-up that fails with 256 (0 modulo 256) makes the runner exit 1, not 0."""
    result = run(app_venv, app_env(migrate_server, database, tmp_path), "--then", "failwith 256")
    assert result.code == 1, result.stderr
    failed = result.event("preflight.migrate.command_failed")
    assert (failed["command"], failed["exit_code"]) == ("failwith", 1)
    assert failed["reason"] == "follow_up_failed"
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("check_failed (follow_up_failed): failwith:")


def test_system_checks_and_a_model_only_the_urlconf_registers(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """As manage.py migrate: system checks run (a failing one exits 7, --skip-checks
    skips it), and a model only the URLconf registers never reads as "changes"."""
    env = app_env(migrate_server, database, tmp_path, DJANGOAPP_URLS="1")
    failing = run(app_venv, {**env, "DJANGOAPP_CHECK_ERROR": "1"})
    assert failing.code == 7, failing.stderr
    failed = failing.event("preflight.migrate.failed")
    assert failed["reason"] == "system_checks_failed"
    assert "urlonly.E001" in failed["message"]
    assert m.fetch(migrate_server, database, "SELECT to_regclass('django_migrations')") == [(None,)]

    skipped = run(app_venv, {**env, "DJANGOAPP_CHECK_ERROR": "1"}, "--skip-checks")
    assert skipped.code == 0, skipped.stderr
    assert skipped.event("preflight.migrate.migrated")["applied"] == [
        *MIGRATIONS,
        "urlonly.0001_initial",
    ]
    # Nothing left to apply: this is when migrate compares models with migrations.
    for args in ((), ("--skip-checks",)):
        again = run(app_venv, env, *args)
        assert again.code == 0, again.stderr
        assert "No migrations to apply" in again.stdout
        assert "have changes" not in again.stdout, again.stdout


def test_lock_lost_mid_run_stops_before_the_next_step(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """The lock's session is terminated while a migration runs, then while a follow-up
    runs: each time the runner starts nothing more and exits 7 (migration_lock_lost)."""
    log = tmp_path / "runner.log"
    proc = start(
        app_venv, app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS="3"), log
    )
    wait_for(log, "preflight.migrate.locked")
    locked = finished(0, "", log.read_text()).event("preflight.migrate.locked")
    deadline = time.monotonic() + 60
    while not m.fetch(migrate_server, database, SLEEPING):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    m.fetch(migrate_server, database, f"SELECT pg_terminate_backend({int(locked['pid'])})")
    result = collect(proc, log)
    assert result.code == 7, result.stderr
    failed = result.event("preflight.migrate.failed")
    assert failed["reason"] == "migration_lock_lost"
    assert "before migration ledger.0003_seed" in failed["message"]
    recorded = m.fetch(migrate_server, database, "SELECT app || '.' || name FROM django_migrations")
    assert sorted(row[0] for row in recorded) == MIGRATIONS[:2]  # 0002 finished, 0003 never began

    marker = tmp_path / "paused"
    proc = start(
        app_venv,
        app_env(migrate_server, database, tmp_path),
        log,
        "--then",
        f"pause {marker} 2",
        "--then",
        "visit",
    )
    wait_for(log, "preflight.migrate.locked")
    locked = finished(0, "", log.read_text()).event("preflight.migrate.locked")
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    m.fetch(migrate_server, database, f"SELECT pg_terminate_backend({int(locked['pid'])})")
    result = collect(proc, log)
    assert result.code == 7, result.stderr
    assert "before --then visit" in result.event("preflight.migrate.failed")["message"]
    assert m.fetch(migrate_server, database, "SELECT count(*) FROM ledger_visit") == [(0,)]


def test_idle_session_timeout_on_the_role_ends_no_session(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """The role has idle_session_timeout (0.5 s) in this database; a 2 s migration, two
    runners, a follow-up that leaves Django's connection idle for 1 s before the next
    uses it: both exit 0, every migration applied once, both visits recorded."""
    with migrate_server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} IN DATABASE {} SET idle_session_timeout = 500").format(
                psycopg.sql.Identifier(pg.APP_USER), psycopg.sql.Identifier(database)
            )
        )
    env = app_env(migrate_server, database, tmp_path, DJANGOAPP_SLOW_SECONDS="2")
    logs = [tmp_path / f"runner-{n}.log" for n in range(2)]
    procs = [
        start(
            app_venv, env, log, "--then", f"pause {tmp_path / f'paused-{n}'} 1", "--then", "visit"
        )
        for n, log in enumerate(logs)
    ]
    results = [collect(proc, log) for proc, log in zip(procs, logs, strict=True)]
    assert [r.code for r in results] == [0, 0], [r.stderr for r in results]
    assert any(r.names().count("preflight.migrate.waiting") for r in results)
    recorded = m.fetch(migrate_server, database, "SELECT app || '.' || name FROM django_migrations")
    assert sorted(row[0] for row in recorded) == MIGRATIONS
    assert m.fetch(migrate_server, database, "SELECT count(*) FROM ledger_visit") == [(2,)]


def test_lock_timeout_retries_then_names_the_blocker(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, database: str, tmp_path: Path
) -> None:
    """PREFLIGHT_MIGRATE_LOCK_TIMEOUT: a migration blocked by another transaction is
    rolled back and retried, 5 times in all, then exits 7 naming the blocker (pid,
    application_name, transaction start; never its query); released during the
    retries, the same migration then goes through."""
    env = app_env(migrate_server, database, tmp_path, PREFLIGHT_MIGRATE_LOCK_TIMEOUT="0.3")
    subprocess.run(
        appvenv.app_command(app_venv, "manage.py", "migrate", "ledger", "0003"),
        cwd=appvenv.DJANGOAPP,
        env=env,
        capture_output=True,
        check=True,
    )
    # The app's own role, as a blocking app transaction would be: another role's
    # transaction start is not visible to the runner (it names "an unknown time").
    host, port = migrate_server.host, migrate_server.port
    dsn = f"host={host} port={port} dbname={database} user={pg.APP_USER}"
    with psycopg.connect(dsn, password=pg.APP_PASSWORD, application_name="blocker") as conn:
        conn.autocommit = True
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE ledger_marker IN ACCESS SHARE MODE")
        gave_up = run(app_venv, env)
        assert gave_up.code == 7, gave_up.stderr
        failed = gave_up.event("preflight.migrate.failed")
        assert failed["reason"] == "migration_lock_timeout"
        assert "ledger.0004_marker_note" in failed["message"]
        assert (
            f"pid {conn.info.backend_pid} (blocker, in a transaction since 20"
            in (failed["message"])
        )
        retries = [e for e in gave_up.events if e["event"] == "preflight.migrate.lock_timeout"]
        assert [e["attempt"] for e in retries] == [1, 2, 3, 4]
        assert "LOCK TABLE" not in gave_up.stderr
        assert ("0004_marker_note",) not in m.fetch(
            migrate_server, database, "SELECT name FROM django_migrations"
        )

        log = tmp_path / "runner.log"
        proc = start(app_venv, env, log)
        wait_for(log, "preflight.migrate.lock_timeout")
        conn.execute("ROLLBACK")
    through = collect(proc, log)
    assert through.code == 0, through.stderr
    assert through.event("preflight.migrate.migrated")["applied"] == MIGRATIONS[3:]


def test_a_pooler_by_name_is_refused_before_any_connection(tmp_path: Path) -> None:
    """SQL_HOST naming a CloudNativePG Pooler: exit 8 (migration_pooler), saying to use -rw."""
    app_venv = appvenv.test_venv()
    env = cli.base_env(
        SQL_HOST="balancer-pooler-rw",
        SQL_DATABASE="balancer",
        SQL_USER="balancer",
        SQL_PASSWORD=pg.APP_PASSWORD,
        DJANGO_SETTINGS_MODULE="appsite.settings",
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    result = run(app_venv, env, "--timeout", "5")
    assert result.code == 8, result.stderr
    failed = result.event("preflight.migrate.failed")
    assert (failed["class"], failed["reason"]) == ("pooler", "migration_pooler")
    assert "balancer-pooler-rw" in failed["message"]
    assert "-rw service" in failed["hint"]
    assert "preflight.migrate.retrying" not in result.names()


def test_usage_and_configuration_errors(tmp_path: Path) -> None:
    """--check with --then, or an unknown alias, is a usage error (2); a bad timeout or
    no settings module, or settings that do not load, is a configuration error (3),
    reported before any connection and without the password."""
    app_venv = appvenv.ready(appvenv.BALANCER)
    env = cli.base_env(PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"))
    assert run(app_venv, env, "--check", "--then", "visit").code == 2
    bad_timeout = run(
        app_venv, {**env, "DJANGO_SETTINGS_MODULE": "appsite.settings"}, "--timeout=x"
    )
    assert bad_timeout.code == 3
    assert "--timeout" in bad_timeout.event("preflight.migrate.failed")["message"]
    no_alias = run(app_venv, {**env, "DJANGO_SETTINGS_MODULE": "appsite.settings"}, "--database=x")
    assert no_alias.code == 2
    pasted = {"SQL_HOST": "db", "SQL_PORT": pg.APP_PASSWORD, "SQL_PASSWORD": pg.APP_PASSWORD}
    bad_settings = run(app_venv, {**env, **pasted, "DJANGO_SETTINGS_MODULE": "appsite.settings"})
    assert bad_settings.code == 3  # run() also checks the password shows nowhere
    assert "SQL_PORT" in bad_settings.event("preflight.migrate.failed")["message"]
    no_settings = run(app_venv, {**env, "PREFLIGHT_TIMEOUT": "5"})
    assert no_settings.code == 3
    assert "DJANGO_SETTINGS_MODULE" in no_settings.event("preflight.migrate.failed")["message"]


def test_sqlite_runs_without_the_lock(tmp_path: Path) -> None:
    """With SQLite there is no advisory lock: it migrates, says so, and --check passes."""
    app_venv = appvenv.test_venv()
    env = cli.base_env(
        SQL_ENGINE="django.db.backends.sqlite3",
        SQL_DATABASE=str(tmp_path / "db.sqlite3"),
        DJANGO_SETTINGS_MODULE="appsite.settings",
    )
    assert run(app_venv, env, "--check", "--timeout", "1").code == 10
    migrated = run(app_venv, env)
    assert migrated.code == 0, migrated.stderr
    assert migrated.event("preflight.migrate.unlocked")["vendor"] == "sqlite"
    assert migrated.event("preflight.migrate.migrated")["applied"] == MIGRATIONS
    assert run(app_venv, env, "--check").code == 0


def test_connection_failures_are_classified(
    app_venv: appvenv.AppVenv, migrate_server: pg.LocalServer, tmp_path: Path
) -> None:
    """A wrong password exits 4 at once; a closed port is retried until the deadline (10);
    both through Django's own connection, with the check's reasons."""
    env = app_env(migrate_server, pg.APP_DB, tmp_path, SQL_PASSWORD="not-the-password-9")
    wrong = run(app_venv, env)
    assert wrong.code == 4, wrong.stderr
    assert wrong.event("preflight.migrate.failed")["reason"] == "auth_failed"
    assert "not-the-password-9" not in wrong.stderr
    assert "preflight.migrate.retrying" not in wrong.names()
    closed = app_env(migrate_server, pg.APP_DB, tmp_path, SQL_PORT=str(pg.free_port()))
    # The deadline counts from the start, Django's own included (1 s can pass before
    # the first attempt on a loaded machine).
    refused = run(app_venv, closed, "--timeout", "3")
    assert refused.code == 10, refused.stderr
    assert refused.event("preflight.migrate.failed")["reason"] == "refused"
    assert refused.event("preflight.migrate.retrying")["reason"] == "refused"
