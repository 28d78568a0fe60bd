"""Migrations run once while replicas wait, and a schema gate.

``python -m preflight.django migrate [--then CMD ...]`` runs inside the APP's
image, with the app's own settings and Django's own connection (whatever driver
Django uses there: psycopg2 or psycopg 3).  It takes a session-level
PostgreSQL advisory lock whose key is derived from the database name (see
:func:`lock_key`), runs ``migrate`` and then each follow-up management command
while holding it, and releases it.  Other runners wait for the lock, logging
``preflight.migrate.waiting``; their ``migrate`` then finds nothing to do.  A
killed holder's lock is released by the server when its session ends.

``python -m preflight.django migrate --check`` applies nothing: it waits until
no migration is left to apply (as Django's ``migrate --check`` decides, from
the ``MigrationExecutor`` plan) and no runner holds the lock, then exits 0.

This module imports only the standard library, Django, and the preflight's
own pure modules; never psycopg, psycopg2 or structlog.  Logs are one JSON
object per line on stderr; the password never appears in them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any, NamedTuple, NoReturn, TextIO

from .. import _events, _exit_codes, _termination
from .._exit_codes import REASONS, ExitClass, Reason
from .._failures import classify
from .._options import DEFAULT_TERMINATION_LOG
from .._redact import Redactor
from .._settings import read_settings
from ._lock import lock_key, lock_parts

POLL_SECONDS = 0.25  # how often a waiter asks again (plus up to 20 % jitter)
LOG_EVERY_SECONDS = 5.0  # how often a waiter logs that it is still waiting
DEFAULT_TIMEOUT = 60.0

MIGRATION_HINT = (
    "read the error above; the failed migration was rolled back (PostgreSQL runs each "
    "migration in a transaction) and the lock released, so the next runner retries it"
)
PENDING_HINT = REASONS[Reason.MIGRATIONS_PENDING].hint
LOCK_HINT = REASONS[Reason.MIGRATION_LOCK_HELD].hint


# --- the process: logs, signals, exit ---


class Log:
    """One JSON object per line, with every secret replaced by ``***``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._redactor = Redactor()

    def add_secret(self, secret: str) -> None:
        self._redactor.add(secret)  # it finds escaped and percent-encoded forms too

    def scrub(self, value: Any) -> Any:
        return self._redactor.document(value)

    def emit(self, level: str, event: str, **fields: Any) -> None:
        record = {
            "timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
            "level": level,
            "event": event,
            **fields,
        }
        line = json.dumps(self.scrub(record), default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Exit(Exception):
    """Stop with ``code`` (already logged)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Run:
    """What one run knows: its log, its start, its deadline, where failures go."""

    def __init__(self, log: Log, timeout: float, termination_log: str) -> None:
        self.log = log
        self.start = time.monotonic()
        self.timeout = timeout
        self.termination_log = termination_log

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 3)

    def expired(self) -> bool:
        return self.timeout > 0 and time.monotonic() - self.start >= self.timeout

    def fail(self, exit_class: ExitClass, reason: str, message: str, hint: str) -> NoReturn:
        """Log ``preflight.migrate.failed``, write the termination message, stop."""
        message = self.log.scrub(" ".join(message.split()))
        self.log.emit(
            "error",
            _events.MIGRATE_FAILED,
            **{"class": exit_class.name},
            exit_code=exit_class.code,
            reason=reason,
            message=message,
            hint=hint,
            elapsed=self.elapsed(),
        )
        line = f"{exit_class.name} ({reason}): {message} - {hint}"
        _termination.write(self.termination_log, self.log.scrub(line))
        raise Exit(exit_class.code)


class Signals:
    """SIGTERM/SIGINT end the run within a second, wherever it is.

    Python runs signal handlers only between bytecodes, and a driver blocked in
    libpq (psycopg2 waiting for a long migration statement) returns only when
    the statement does.  So the C-level handler's wakeup byte is read by a
    thread, which logs ``preflight.migrate.interrupted`` and ends the process
    at once.  The server then ends the session: the running migration's
    transaction is rolled back and the advisory lock released, exactly as when
    the process is killed.
    """

    def __init__(self, run_: Run) -> None:
        self._run = run_

    def install(self) -> None:
        reader, writer = os.pipe()
        os.set_blocking(writer, False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _ignore)
        signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(reader,), daemon=True).start()

    def _watch(self, reader: int) -> None:
        while True:
            data = os.read(reader, 1)
            if data and data[0] in (signal.SIGTERM, signal.SIGINT):
                self.stop(data[0])

    def stop(self, signum: int) -> NoReturn:
        code = _exit_codes.interrupted_code(signum)
        self._run.log.emit(
            "warning",
            _events.MIGRATE_INTERRUPTED,
            signal=signal.Signals(signum).name,
            exit_code=code,
            elapsed=self._run.elapsed(),
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """Python-level no-op; the watcher thread acts on the wakeup byte."""


# --- arguments and configuration ---


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m preflight.django",
        description="Run Django's migrations once under a PostgreSQL advisory lock, "
        "or wait until none is left to apply (--check).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="migrate under the lock, or --check")
    migrate.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="CMD",
        help="a management command (with its arguments, shell-quoted) to run under "
        "the lock after migrate; repeatable, run in order",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="apply nothing: wait until no migration is left and the lock is free",
    )
    migrate.add_argument(
        "--settings", help="Django settings module (default: $DJANGO_SETTINGS_MODULE)"
    )
    migrate.add_argument("--database", default="default", help="the DATABASES alias")
    migrate.add_argument(
        "--timeout",
        help="seconds to wait for the lock (--check: for the schema); 0 waits forever "
        f"(default: $PREFLIGHT_TIMEOUT or {DEFAULT_TIMEOUT:g})",
    )
    return parser


def parse_timeout(value: str) -> float:
    """A non-negative number of seconds; raises ValueError otherwise."""
    seconds = float(value.strip())
    if not (seconds >= 0 and seconds != float("inf")):
        raise ValueError(value)
    return seconds


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The command line; returns the exit code."""
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)  # exits 2 on a usage error
    log = Log()
    # The password in every form the app's settings may hold it (SQL_PASSWORD, the
    # file, DATABASE_URL), withheld from the first line on, settings errors included.
    for secret in read_settings(env).secrets:
        log.add_secret(secret)
    termination = env.get("PREFLIGHT_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG
    run_ = Run(log, DEFAULT_TIMEOUT, termination)
    Signals(run_).install()
    try:
        if args.check and args.then:
            run_.fail(
                _exit_codes.USAGE,
                "usage",
                "--check applies nothing, so it takes no --then commands",
                "run the commands in the pod that migrates",
            )
        raw = args.timeout if args.timeout is not None else env.get("PREFLIGHT_TIMEOUT", "")
        if raw.strip():
            try:
                run_.timeout = parse_timeout(raw)
            except ValueError:
                source = "--timeout" if args.timeout is not None else "PREFLIGHT_TIMEOUT"
                run_.fail(
                    _exit_codes.CONFIG_INVALID,
                    "config_invalid",
                    f"{source}: {raw!r} is not a number of seconds >= 0",
                    "set it to a number of seconds; 0 waits forever",
                )
        return _run(run_, args, env)
    except Exit as stop:
        return stop.code


# --- Django ---


def _setup_django(run_: Run, settings: str | None, env: Mapping[str, str]) -> None:
    module = settings or env.get("DJANGO_SETTINGS_MODULE", "")
    if not module:
        run_.fail(
            _exit_codes.CONFIG_INVALID,
            "config_invalid",
            "no Django settings: DJANGO_SETTINGS_MODULE is unset and --settings not given",
            "set DJANGO_SETTINGS_MODULE as manage.py does, or pass --settings",
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        import django

        django.setup()
    except Exception as exc:
        run_.fail(
            _exit_codes.CONFIG_INVALID,
            "config_invalid",
            f"the settings {module} cannot be loaded: {type(exc).__name__}: {exc}",
            "fix the settings (manage.py check shows the same error)",
        )


def unapplied(connection: Any) -> list[str]:
    """``app.migration`` names still to apply, in order, as ``migrate`` would plan them."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


class Database:
    """The lock's session: a Django connection of its own for the alias.

    It is a separate ``DatabaseWrapper`` (``connections.create_connection``), so
    no management command that closes Django's connections can drop the lock.
    """

    def __init__(self, run_: Run, alias: str) -> None:
        from django.db import connections

        self.run = run_
        self.alias = alias
        self.settings = connections[alias].settings_dict
        self.conn: Any = connections.create_connection(alias)
        password = self.settings.get("PASSWORD") or ""
        if password:
            run_.log.add_secret(str(password))
        self.key = 0
        self.classid = self.objid = 0

    @property
    def vendor(self) -> str:
        return str(self.conn.vendor)

    def driver(self) -> str:
        return str(getattr(self.conn.Database, "__name__", "unknown"))

    def query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, list(params))
            row = cursor.fetchone()
        return row[0] if row else None

    def connect(self) -> None:
        """Connect (retrying what can heal until the deadline) and compute the key."""
        while True:
            try:
                self.conn.ensure_connection()
                if self.vendor == "postgresql":
                    database = self.query("SELECT current_database()")
                    self.key = lock_key(database)
                    self.classid, self.objid = lock_parts(self.key)
                return
            except Exception as exc:
                self.retry_or_fail(exc)

    def retry_or_fail(self, exc: Exception) -> None:
        """A database error: wait and return if it may heal before the deadline."""
        failure = Failure.of(exc)
        if not failure.retried or self.run.expired():
            self.run.fail(failure.exit_class, failure.reason, failure.message, failure.hint)
        self.run.log.emit(
            "warning",
            _events.MIGRATE_RETRYING,
            reason=failure.reason,
            message=self.run.log.scrub(failure.message),
            elapsed=self.run.elapsed(),
        )
        self.close()
        _sleep()

    def holder(self) -> int | None:
        """The pid of the session holding the lock, or None."""
        pid = self.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
            [self.classid, self.objid],
        )
        return int(pid) if pid is not None else None

    def try_lock(self) -> bool:
        return bool(self.query("SELECT pg_try_advisory_lock(%s)", [self.key]))

    def unlock(self) -> bool:
        return bool(self.query("SELECT pg_advisory_unlock(%s)", [self.key]))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            self.conn.close()


class Failure(NamedTuple):
    """A driver error (through Django's wrapper) in the preflight's terms."""

    exit_class: ExitClass
    reason: str
    message: str
    hint: str
    retried: bool

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        # psycopg 3 calls it sqlstate, psycopg2 pgcode.
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        timed_out = "ConnectionTimeout" in {k.__name__ for k in type(cause).__mro__}
        reason, message = classify(
            str(cause),
            sqlstate=sqlstate if isinstance(sqlstate, str) else None,
            timed_out=timed_out,
        )
        info = REASONS[reason]
        return cls(
            info.exit_class, reason.value, message or type(cause).__name__, info.hint, info.retried
        )


def _sleep() -> None:
    time.sleep(POLL_SECONDS * (1 + 0.2 * random.random()))  # noqa: S311 - jitter, not crypto


# --- the two modes ---


def _run(run_: Run, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    _setup_django(run_, args.settings, env)
    from django.db import connections

    if args.database not in connections.settings:
        run_.fail(
            _exit_codes.USAGE,
            "usage",
            f"--database {args.database}: no such alias in DATABASES",
            "name an alias from DATABASES",
        )
    db = Database(run_, args.database)
    import django

    run_.log.emit(
        "info",
        _events.MIGRATE_PLAN,
        mode="check" if args.check else "migrate",
        database=db.settings.get("NAME"),
        host=db.settings.get("HOST"),
        port=db.settings.get("PORT"),
        user=db.settings.get("USER"),
        vendor=db.vendor,
        driver=db.driver(),
        django=django.get_version(),
        then=list(args.then),
        timeout=run_.timeout,
    )
    try:
        db.connect()
        if db.vendor != "postgresql":
            run_.log.emit(
                "warning",
                _events.MIGRATE_UNLOCKED,
                vendor=db.vendor,
                reason="advisory locks are a PostgreSQL feature: running without the lock",
            )
        if args.check:
            return _check(run_, db)
        return _migrate(run_, db, args.then)
    finally:
        db.close()


def _wait(run_: Run, db: Database, ready: Callable[[], dict[str, Any] | None]) -> float:
    """Poll ``ready`` (None when done, else what is awaited) until it is done.

    Logs ``preflight.migrate.waiting`` at once and then every few seconds; at the
    deadline fails with exit 10 naming what was awaited.  Returns seconds waited.
    """
    started = time.monotonic()
    next_log = started
    while True:
        try:
            awaited = ready()
        except Exception as exc:
            db.retry_or_fail(exc)
            continue
        waited = round(time.monotonic() - started, 3)
        if awaited is None:
            return waited
        if run_.expired():
            reason = awaited.pop("reason")
            run_.fail(_exit_codes.UNREACHABLE, reason, awaited.pop("message"), awaited.pop("hint"))
        if time.monotonic() >= next_log:
            public = {k: v for k, v in awaited.items() if k not in ("message", "hint")}
            run_.log.emit("info", _events.MIGRATE_WAITING, waited=waited, **public)
            next_log += LOG_EVERY_SECONDS
        _sleep()


def _lock_held(db: Database) -> dict[str, Any]:
    pid = db.holder()
    return {
        "reason": Reason.MIGRATION_LOCK_HELD.value,
        "holder_pid": pid,
        "lock_key": db.key,
        "message": f"the migration lock {db.key} is still held by pid {pid}",
        "hint": LOCK_HINT,
    }


def _migrate(run_: Run, db: Database, then: Sequence[str]) -> int:
    from django.core.management import call_command
    from django.db import connections

    locked = db.vendor == "postgresql"
    waited = 0.0
    if locked:
        waited = _wait(run_, db, lambda: None if db.try_lock() else _lock_held(db))
        run_.log.emit("info", _events.MIGRATE_LOCKED, lock_key=db.key, waited=waited)
    try:
        work = connections[db.alias]
        try:
            pending = unapplied(work)
            call_command("migrate", database=db.alias, interactive=False, verbosity=1)
        except (Exception, SystemExit) as exc:
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                pending = []
            else:
                run_.fail(
                    _exit_codes.CHECK_FAILED,
                    Reason.MIGRATION_FAILED.value,
                    f"migrate failed: {type(exc).__name__}: {exc}",
                    MIGRATION_HINT,
                )
        run_.log.emit("info", _events.MIGRATE_MIGRATED, applied=pending)
        for command in then:
            _follow_up(run_, command, call_command)
    finally:
        if locked:
            released = False
            with contextlib.suppress(Exception):  # reported just below
                released = db.unlock()
            if not released:
                run_.log.emit(
                    "warning",
                    _events.MIGRATE_LOCK_LOST,
                    lock_key=db.key,
                    reason="the lock's session ended before the release",
                )
        connections.close_all()
    run_.log.emit("info", _events.MIGRATE_DONE, waited=waited, elapsed=run_.elapsed())
    return 0


def _follow_up(run_: Run, command: str, call_command: Callable[..., Any]) -> None:
    """Run one ``--then`` command; a failure stops the run with its exit status."""
    words = shlex.split(command)
    if not words:
        run_.fail(_exit_codes.USAGE, "usage", "--then: empty command", "name a command")
    started = time.monotonic()
    code: int = 0
    message = ""
    try:
        call_command(*words)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        message = f"exited with {exc.code}"
    except Exception as exc:
        code = int(getattr(exc, "returncode", 1) or 1)
        message = f"{type(exc).__name__}: {exc}"
    elapsed = round(time.monotonic() - started, 3)
    if code == 0:
        run_.log.emit("info", _events.MIGRATE_COMMAND, command=words[0], elapsed=elapsed)
        return
    run_.log.emit(
        "error",
        _events.MIGRATE_COMMAND_FAILED,
        command=words[0],
        exit_code=code,
        message=run_.log.scrub(" ".join(message.split())),
        elapsed=elapsed,
    )
    _termination.write(run_.termination_log, run_.log.scrub(f"{words[0]}: {message}"))
    raise Exit(code)


def _check(run_: Run, db: Database) -> int:
    def awaited() -> dict[str, Any] | None:
        pending = unapplied(db.conn)
        if pending:
            return {
                "reason": Reason.MIGRATIONS_PENDING.value,
                "unapplied": pending,
                "message": f"{len(pending)} migration(s) not applied: {', '.join(pending)}",
                "hint": PENDING_HINT,
            }
        if db.vendor == "postgresql" and db.holder() is not None:
            return _lock_held(db)
        return None

    waited = _wait(run_, db, awaited)
    run_.log.emit("info", _events.MIGRATE_CURRENT, waited=waited, elapsed=run_.elapsed())
    return 0


if __name__ == "__main__":  # python -m preflight.django migrate [--then CMD ...] | --check
    raise SystemExit(main())
