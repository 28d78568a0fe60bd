"""Runs of ``python -m preflight.django migrate`` as the fault tests and the
migrate chaos benchmark watch them: a child in an app venv whose JSON lines
are read while it runs, and the server-side truth to judge it by (what
``django_migrations`` recorded, what the slow migration wrote, which advisory
locks are held).

The lock key is computed here from its documented definition (the first 8
bytes, big-endian and signed, of SHA-256 of ``"preflight.migrate:" +
database``), not imported from the runner: a runner that changed its key
would fail these tests instead of silently agreeing with itself.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from tests.support import appvenv, cli, pg

# The two app cells every migrate scenario runs under: balancer's exact pins (Django
# 4.2.3 + psycopg2-binary 2.9.6) and the test venv (Django 5.2 + psycopg 3).
CELLS: dict[str, Callable[[], appvenv.AppVenv]] = {
    "dj42-psycopg2": lambda: appvenv.ready(appvenv.BALANCER),
    "dj52-psycopg3": appvenv.test_venv,
}
LOCK_PREFIX = "preflight.migrate:"
MIGRATIONS = (
    "ledger.0001_initial",
    "ledger.0002_slow",
    "ledger.0003_seed",
    "ledger.0004_marker_note",
)
SLOW = "ledger.0002_slow"
STRANGER = "stranger-holding-the-lock"
_numbers = itertools.count()


def lock_key(database: str) -> int:
    """The runner's advisory lock key for ``database``, by its documented definition."""
    digest = hashlib.sha256((LOCK_PREFIX + database).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def app_env(host: str, port: int, database: str, **extra: str) -> dict[str, str]:
    """The app's environment for the test project (tests/fixtures/djangoapp); ``extra``
    adds to it or overrides it."""
    variables = {
        "SQL_HOST": host,
        "SQL_PORT": str(port),
        "SQL_DATABASE": database,
        "SQL_USER": pg.APP_USER,
        "SQL_PASSWORD": pg.APP_PASSWORD,
        "DJANGO_SETTINGS_MODULE": "appsite.settings",
        "PREFLIGHT_TERMINATION_LOG": os.devnull,
    }
    return cli.base_env(**(variables | extra))


def new_database(server: pg.LocalServer, prefix: str = "mf") -> str:
    """A new database owned by the app's role, with the slow migration's record table."""
    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    with server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(pg.APP_USER)
            )
        )
    with server.admin(name) as conn:
        conn.execute(
            psycopg.sql.SQL(
                "CREATE TABLE slow_applied (pid int, at timestamptz DEFAULT clock_timestamp());"
                " ALTER TABLE slow_applied OWNER TO {}"
            ).format(psycopg.sql.Identifier(pg.APP_USER))
        )
    return name


def drop_database(server: pg.LocalServer, name: str) -> None:
    """Drop ``name``, ending whatever sessions (orphaned ones too) are still in it."""
    with server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


class Runner:
    """One runner child: stderr (its JSON lines) goes to a file read while it runs,
    and a thread notes the moment it exits."""

    def __init__(
        self,
        venv: appvenv.AppVenv,
        env: dict[str, str],
        log: Path,
        *args: str,
        wrap: Sequence[str] = (),
    ) -> None:
        self.log = log
        self.spawned = time.monotonic()
        self.exited: float | None = None
        command = [*wrap, *appvenv.app_command(venv, "-m", "preflight.django", "migrate", *args)]
        with open(log, "w") as stderr, open(log.with_suffix(".out"), "w") as stdout:
            self.proc = subprocess.Popen(
                command, cwd=appvenv.DJANGOAPP, env=env, stdout=stdout, stderr=stderr, text=True
            )
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        self.proc.wait()
        self.exited = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """Every complete JSON line so far (a line being written is left for later)."""
        found = []
        for line in self.text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    found.append(event)
        return found

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == name]

    def wait_event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """The first event ``name``; fails if the runner exits or ``timeout`` passes first."""
        end = time.monotonic() + timeout
        while True:
            if found := self.named(name):
                return found[0]
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {name}:\n"
            assert time.monotonic() < end, f"no {name} within {timeout:g} s:\n{self.text()}"
            time.sleep(0.05)

    def finish(self, timeout: float = 180) -> cli.Run:
        """Wait for the exit; the run's events.  No password may show anywhere."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._watcher.join(timeout=5)
        stdout = self.log.with_suffix(".out").read_text()
        stderr = self.text()
        cli.assert_no_secret(pg.APP_PASSWORD, stdout, stderr)
        return cli.Run(self.proc.returncode, stdout, stderr, self.seconds(), self.events())

    def seconds(self) -> float:
        """From the spawn to the exit (as the harness saw them)."""
        assert self.exited is not None
        return self.exited - self.spawned

    def started(self) -> float:
        """When the runner logged its first line (monotonic clock): its deadline's start
        at the latest, Python's and Django's imports excluded."""
        events = self.events()
        assert events, self.text()
        return monotonic(events[0])

    def overrun(self, timeout: float) -> float:
        """Seconds past ``timeout`` from its first line to its exit (negative: early)."""
        assert self.exited is not None
        return self.exited - self.started() - timeout

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def monotonic(event: dict[str, Any]) -> float:
    """An event's wall-clock ``timestamp`` on this process's monotonic clock."""
    stamp = datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    return stamp.timestamp() - (time.time() - time.monotonic())


def failed_event(run: cli.Run) -> dict[str, Any]:
    """The runner's last ``*.failed`` event (it names reason, class and message)."""
    failed = [e for e in run.events if str(e.get("event", "")).endswith(".failed")]
    assert failed, f"no failed event (exit {run.code}):\n{run.stderr}"
    return failed[-1]


def fetch(server: pg.LocalServer, database: str, sql: str) -> list[tuple[Any, ...]]:
    with server.admin(database) as conn:
        return conn.execute(sql).fetchall()


def recorded(server: pg.LocalServer, database: str) -> list[str]:
    """``app.name`` of every row of ``django_migrations``, duplicates kept ([] if none)."""
    if fetch(server, database, "SELECT to_regclass('django_migrations')") == [(None,)]:
        return []
    rows = fetch(server, database, "SELECT app || '.' || name FROM django_migrations ORDER BY id")
    return [str(name) for (name,) in rows]


def slow_applications(server: pg.LocalServer, database: str) -> int:
    """How many times the slow migration committed (its rows in ``slow_applied``)."""
    ((count,),) = fetch(server, database, "SELECT count(*) FROM slow_applied")
    return int(count)


def seed_rows(server: pg.LocalServer, database: str) -> int:
    """How many times the data migration 0003_seed committed (0 before its table exists)."""
    if fetch(server, database, "SELECT to_regclass('ledger_marker')") == [(None,)]:
        return 0
    ((count,),) = fetch(server, database, "SELECT count(*) FROM ledger_marker")
    return int(count)


def advisory_locks(server: pg.LocalServer) -> list[tuple[Any, ...]]:
    """Every advisory lock on the server, granted or awaited: (database, pid, granted)."""
    with server.admin() as conn:
        return conn.execute(
            "SELECT d.datname, l.pid, l.granted FROM pg_locks l"
            " LEFT JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory'"
        ).fetchall()


def sessions_in(server: pg.LocalServer, database: str, where: str = "true") -> list[int]:
    """Backend pids of the client sessions in ``database`` matching ``where``."""
    with server.admin() as conn:
        rows = conn.execute(
            f"SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = "  # noqa: S608
            f"'client backend' AND pid <> pg_backend_pid() AND ({where})",
            [database],
        ).fetchall()
    return [int(pid) for (pid,) in rows]


@contextlib.contextmanager
def stranger(server: pg.LocalServer, database: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain session (over TCP, as the app's role) holding the runner's lock."""
    with psycopg.connect(
        host=server.host,
        port=server.port,
        dbname=database,
        user=pg.APP_USER,
        password=pg.APP_PASSWORD,
        application_name=STRANGER,
        sslmode="disable",
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [lock_key(database)])
        yield conn
