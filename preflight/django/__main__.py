"""``python -m preflight.django migrate``: migrations once while replicas wait, and a gate.

``migrate [--then CMD ...]`` runs inside the APP's image, with the app's own
settings and Django's own connection (whatever driver Django uses there:
psycopg2 or psycopg 3).  It takes the migration lock (``_lock``), runs what
``manage.py migrate`` runs (system checks included, unless ``--skip-checks``)
and then each follow-up management command, and releases the lock.  Other
runners wait, logging ``preflight.migrate.waiting`` with the holder; their
``migrate`` then finds nothing to do.

**The lock holds for the whole run, or the run stops.**  It is a
transaction-scoped advisory lock on a connection of its own, held in a
transaction that stays open for the run (why, and what it protects against:
:class:`._lock.LockSession`).  Before each migration (Django's own
``migration_progress_callback``), before each follow-up and before the release,
the runner asks the server whether that session still holds it; if not, it
stops with ``migration_lock_lost`` (exit 7), never 0.  A dead peer's lock frees
when the server ends its session: TCP keepalives and ``tcp_user_timeout`` on
both ends of the lock's connection make that about 30 s, not the kernel's 2 h.

**Poolers.**  The lock is correct through any pooler (a transaction pins its
server connection) and cannot be left behind on one.  A host that names a
CloudNativePG Pooler, or a server connection that already carries the lock (a
session lock another client leaked there), is refused with ``migration_pooler``
(exit 8) before any lock is taken.  A backend pid that changes between
statements is not used to refuse: the first runner through a quiet transaction
pooler sees one pid and the next ones several, so it would refuse some runners
and not others.

**One deadline** (``--timeout`` / ``PREFLIGHT_TIMEOUT``, the check's option and
parser) covers everything until the work starts: both connections, every
query, the lock wait; and all of ``--check``.  The run ends within it plus a
second, even inside a driver call that ignores signals (a watchdog thread ends
the process), with exit 10 and the phase named.  Migrations and follow-ups, the
work itself, are not cut short (Kubernetes' ``activeDeadlineSeconds`` is the
bound for those).

``migrate --check`` applies nothing: it waits until no migration is left to
apply (as Django's ``migrate --check`` decides, from the ``MigrationExecutor``
plan) and no runner holds the lock, then exits 0.  It runs no system checks.

Standard library and Django only (everything under ``preflight/django/``;
tests/unit/test_migrate.py imports it with structlog, tenacity and both drivers
blocked).  It fails through the check's error model (``_errors``), writes the
check's JSON lines (``_jsonlog``), reads the check's option specs
(``_options``) and classifies driver errors as the check does (``_failures``).
The password never appears in a log line or the termination message.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, NoReturn

from .. import _events, _exit_codes, _options, _termination
from .._deadline import Deadline
from .._errors import ConfigError, PreflightError, Problem, error_for
from .._exit_codes import Reason
from .._failures import driver_error
from .._jsonlog import Writer
from .._redact import Redactor
from .._settings import read_settings
from .._values import parse_seconds
from ._lock import Holder, LockSession, harden_django_connection
from ._steps import CommandFailed, follow_up, migrate_with_retries, setup_django, unapplied
from ._wait import Awaited, Waiter

# Past the deadline, the watchdog ends a run that is stuck where Python cannot
# interrupt it (psycopg2 inside libpq) after this much more.
GRACE_SECONDS = 0.5
# The runner's own knob, with the check's spec type and parser (not a flag of the check).
LOCK_TIMEOUT_SPEC = _options.OptionSpec(
    "lock_timeout",
    "PREFLIGHT_MIGRATE_LOCK_TIMEOUT",
    "--lock-timeout",
    parse_seconds,
    "lock_timeout for each migration in seconds: a migration that waits longer for a "
    "table lock is rolled back and tried again, at most 5 times in all (default 0: the "
    "role's own lock_timeout, no retries)",
    "SECONDS",
)
_SPECS = {spec.name: spec for spec in (*_options.SPECS, LOCK_TIMEOUT_SPEC)}
_PHASES = {
    "start": "starting",
    "connect": "connecting to the database",
    "pooler": "checking for a pooler",
    "lock": "waiting for the migration lock",
    "django": "connecting Django's own connection under the lock",
    "schema": "waiting for the schema (--check)",
}


class Exit(Exception):
    """Stop with ``code`` (already logged)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Run:
    """What one run knows: its log, its deadline, its phase, where failures go."""

    def __init__(self, log: Writer, deadline: Deadline, termination_log: str) -> None:
        self.log = log
        self.deadline = deadline
        self.termination_log = termination_log
        self.phase = "start"
        self.bounded = True  # the deadline applies (until the work starts)
        self.awaited: PreflightError | None = None  # what the current wait waits for
        self._end = threading.Lock()
        self._ended = False

    def elapsed(self) -> float:
        return round(self.deadline.elapsed(), 3)

    def record(self, error: PreflightError, **extra: Any) -> int | None:
        """Log the failure and write the termination message, once per run; returns the
        exit code (None if the run already ended)."""
        with self._end:
            if self._ended:
                return None
            self._ended = True
            fields: dict[str, Any] = {"class": error.exit_class.name, "exit_code": error.exit_code}
            event = _events.MIGRATE_FAILED
            if isinstance(error, CommandFailed):
                event = _events.MIGRATE_COMMAND_FAILED
                fields["command"] = error.command
            if isinstance(error, ConfigError):
                fields["problems"] = [str(p) for p in error.problems]
            self.log.emit(
                "error",
                event,
                **fields,
                reason=str(error.reason),
                message=" ".join(error.message.split()),
                hint=error.hint,
                **extra,
                elapsed=self.elapsed(),
            )
            why = _termination.write(self.termination_log, self.log.redactor.text(error.one_line()))
            if why is not None:
                self.log.emit(
                    "warning",
                    _events.TERMINATION_LOG_UNWRITABLE,
                    path=self.termination_log,
                    error=why,
                )
            return error.exit_code

    def fail(self, error: PreflightError) -> NoReturn:
        extra = {"phase": self.phase}
        if error.retryable and self.past(0):  # what was awaited when the time ran out
            error = self.past_deadline(error)
        code = self.record(error, **extra)
        raise Exit(error.exit_code if code is None else code)

    def past(self, grace: float) -> bool:
        """Whether the deadline applies now and passed more than ``grace`` seconds ago."""
        return self.bounded and bool(self.deadline.timeout) and self.deadline.remaining() < -grace

    def past_deadline(self, error: PreflightError | None) -> PreflightError:
        """The failure at the deadline: what was awaited, with the phase named."""
        phase = _PHASES.get(self.phase, self.phase)
        if error is None:
            return error_for(
                Reason.TIMEOUT, f"the deadline ({self.deadline.timeout:g} s) passed while {phase}"
            )
        return error_for(
            error.reason,
            f"{error.message} (the deadline, {self.deadline.timeout:g} s, passed while {phase})",
            hint=error.hint,
        )

    def watch(self) -> None:
        """Start the watchdog: past the deadline and the grace, it ends the process."""
        threading.Thread(target=self._watchdog, daemon=True, name="deadline").start()

    def _watchdog(self) -> None:
        while True:
            time.sleep(0.05)
            if not self.past(GRACE_SECONDS):
                continue
            code = self.record(self.past_deadline(self.awaited), phase=self.phase)
            if code is not None:
                _flush()
                os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class Signals:
    """SIGTERM/SIGINT end the run within a second, wherever it is.

    Python runs signal handlers only between bytecodes, and a driver blocked in
    libpq (psycopg2 waiting for a long migration statement) returns only when
    the statement does.  So the C-level handler's wakeup byte is read by a
    thread, which logs ``preflight.migrate.interrupted`` and ends the process
    at once.  The server then ends the session: the running migration's
    transaction is rolled back and the lock released, exactly as when the
    process is killed.
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
        _flush()
        os._exit(code)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """Python-level no-op; the watcher thread acts on the wakeup byte."""


# --- arguments and options ---


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m preflight.django",
        description="Run Django's migrations once under a PostgreSQL advisory lock, "
        "or wait until none is left to apply (--check).",
        epilog=_exit_codes.epilog() + "; a failed --then command: its own status (1-255).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    migrate_ = sub.add_parser("migrate", help="migrate under the lock, or --check")
    migrate_.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="CMD",
        help="a management command (with its arguments, shell-quoted) to run under "
        "the lock after migrate; repeatable, run in order",
    )
    migrate_.add_argument(
        "--check",
        action="store_true",
        help="apply nothing: wait until no migration is left and the lock is free "
        "(runs no system checks)",
    )
    migrate_.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip Django's system checks, as manage.py migrate --skip-checks does",
    )
    migrate_.add_argument(
        "--settings", help="Django settings module (default: $DJANGO_SETTINGS_MODULE)"
    )
    migrate_.add_argument("--database", default="default", help="the DATABASES alias")
    timeout = _SPECS["timeout"]
    migrate_.add_argument(
        timeout.flag,
        metavar=timeout.metavar,
        help=f"{timeout.help}; the work under the lock is not cut short "
        f"(default: ${timeout.variable} or 60)",
    )
    migrate_.add_argument(
        LOCK_TIMEOUT_SPEC.flag,
        metavar=LOCK_TIMEOUT_SPEC.metavar,
        help=f"{LOCK_TIMEOUT_SPEC.help} (or ${LOCK_TIMEOUT_SPEC.variable})",
    )
    return parser


def read_options(
    flags: Mapping[str, str | None], env: Mapping[str, str]
) -> tuple[dict[str, Any], list[Problem]]:
    """The runner's share of the check's knobs, through the check's specs and parsers:
    a flag wins over its variable; every problem is reported, naming its source."""
    defaults = _options.Options()
    values: dict[str, Any] = {
        "timeout": defaults.timeout,
        "connect_timeout": defaults.connect_timeout,
        "termination_log": defaults.termination_log,
        "lock_timeout": 0.0,
    }
    problems: list[Problem] = []
    for name in values:
        spec = _SPECS[name]
        flag = flags.get(name)
        raw, source = (
            (flag, spec.flag) if flag is not None else (env.get(spec.variable), spec.variable)
        )
        if raw is None or not raw.strip():
            continue
        try:
            values[name] = spec.parse(raw)
        except ValueError as exc:
            problems.append(Problem(source, str(exc)))
    return values, problems


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The command line; returns the exit code."""
    deadline_start = time.monotonic()
    env = os.environ if environ is None else environ
    args = _parser().parse_args(argv)  # exits 2 on a usage error
    # The password in every form the app's settings may hold it (SQL_PASSWORD, the
    # file, DATABASE_URL), withheld from the first line on, settings errors included.
    log = Writer(sys.stderr, Redactor(read_settings(env).value.secrets))
    values, problems = read_options(
        {"timeout": args.timeout, "lock_timeout": args.lock_timeout}, env
    )
    run_ = Run(log, Deadline(values["timeout"], start=deadline_start), values["termination_log"])
    Signals(run_).install()
    run_.watch()
    try:
        try:
            if problems:
                run_.fail(
                    ConfigError(problems, hint="set it to a number of seconds; 0 waits forever")
                )
            if args.check and args.then:
                run_.fail(
                    error_for(
                        Reason.USAGE,
                        "--check applies nothing, so it takes no --then commands",
                        hint="run the commands in the pod that migrates",
                    )
                )
            commands = [shlex.split(command) for command in args.then]
            if not all(commands):
                run_.fail(error_for(Reason.USAGE, "--then: empty command", hint="name a command"))
            return _run(run_, args, commands, values, env)
        except PreflightError as error:
            run_.fail(error)
    except Exit as stop:
        return stop.code


# --- the run ---


def _port(value: Any) -> Any:
    """The port as the check logs it: an integer (Django keeps it a string)."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() else (value or None)


def _run(
    run_: Run,
    args: argparse.Namespace,
    commands: list[list[str]],
    values: Mapping[str, Any],
    env: Any,
) -> int:
    setup_django(args.settings, env)
    from django.db import connections

    if args.database not in connections.settings:
        raise error_for(
            Reason.USAGE,
            f"--database {args.database}: no such alias in DATABASES",
            hint="name an alias from DATABASES",
        )
    lock = LockSession(args.database)  # a copy of the settings: its own options
    harden_django_connection(args.database, lock)
    settings = lock.conn.settings_dict
    if settings.get("PASSWORD"):
        run_.log.redactor.add(str(settings["PASSWORD"]))
    import django

    run_.log.emit(
        "info",
        _events.MIGRATE_PLAN,
        mode="check" if args.check else "migrate",
        database=settings.get("NAME"),
        host=settings.get("HOST"),
        port=_port(settings.get("PORT")),
        user=settings.get("USER"),
        vendor=lock.vendor,
        driver=lock.driver(),
        django=django.get_version(),
        then=list(args.then),
        timeout=run_.deadline.timeout,
        skip_checks=bool(args.skip_checks),
        lock_timeout=values["lock_timeout"],
    )
    session = _Session(run_, lock, values["connect_timeout"])
    try:
        if args.check:
            return session.check()
        if lock.vendor != "postgresql":
            run_.log.emit(
                "warning",
                _events.MIGRATE_UNLOCKED,
                vendor=lock.vendor,
                reason="advisory locks are a PostgreSQL feature: running without the lock",
            )
        else:
            _refuse_pooler_by_name(str(settings.get("HOST") or ""))
        return session.migrate(
            args.database,
            commands,
            skip_checks=args.skip_checks,
            lock_timeout=values["lock_timeout"],
        )
    finally:
        lock.close()


def _refuse_pooler_by_name(host: str) -> None:
    from .._hosts import classify_host

    try:
        found = classify_host(host) if host else None
    except Exception:  # an unusual HOST is Django's business, not a pooler
        found = None
    if found is not None and found.pooler:
        raise error_for(
            Reason.MIGRATION_POOLER,
            f"HOST {host} is a connection pooler ({found.evidence}), where a migration lock "
            "cannot be trusted and Django's session state does not hold",
        )


class _BlockerSampler:
    """While migrations run with a lock timeout, asks every 0.1 s (on the lock's session,
    from a thread) which sessions block Django's, so a migration that gives up can name
    them: the wait is over, and with it the server's record of who blocked it."""

    def __init__(self, lock: LockSession, alias: str, lock_timeout: float) -> None:
        self._lock = lock
        self._alias = alias
        self._active = lock_timeout > 0
        self._stop = threading.Event()
        self._seen: list[str] = []

    def __enter__(self) -> _BlockerSampler:
        if self._active:
            from django.db import connections

            with connections[self._alias].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = int(cursor.fetchone()[0])
            threading.Thread(target=self._sample, args=(pid,), daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()

    def _sample(self, pid: int) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(Exception):  # the lock's own checks report a broken session
                found = self._lock.blockers(pid)
                if found:
                    self._seen = found

    def take(self) -> list[str]:
        """The blockers last seen, forgotten for the next try."""
        seen, self._seen = self._seen, []
        return seen


class _Session:
    """The run's steps on the lock's session, each under the deadline until the work."""

    def __init__(self, run_: Run, lock: LockSession, connect_timeout: int) -> None:
        self.run = run_
        self.lock = lock
        self.connect_timeout = connect_timeout
        self.waiter = Waiter(run_.deadline)
        self.postgres = lock.vendor == "postgresql"

    # --- waiting, connecting ---

    def wait(self, attempt: Callable[[], Awaited | None]) -> float:
        def tracked() -> Awaited | None:
            awaited = attempt()
            self.run.awaited = awaited.error if awaited is not None else None
            return awaited

        return self.waiter.wait(tracked, self.report)

    def report(self, awaited: Awaited, waited: float) -> None:
        if awaited.every_time:
            self.run.log.emit(
                "warning",
                _events.MIGRATE_RETRYING,
                reason=str(awaited.error.reason),
                message=awaited.error.message,
                elapsed=self.run.elapsed(),
            )
        else:
            self.run.log.emit("info", _events.MIGRATE_WAITING, waited=waited, **awaited.fields)

    def retry_or_raise(self, exc: Exception, close: Callable[[], None]) -> Awaited:
        """A database error: awaited again if it may heal, raised if not."""
        if isinstance(exc, PreflightError):
            raise exc
        error = driver_error(exc)
        close()
        if not error.retryable:
            raise error
        return Awaited(error, {}, every_time=True)

    def ensure_connected(self) -> None:
        if self.lock.conn.connection is None:
            self.lock.connect(self.run.deadline.connect_timeout(self.connect_timeout))

    def connect(self) -> None:
        self.run.phase = "connect"

        def attempt() -> Awaited | None:
            try:
                self.ensure_connected()
            except Exception as exc:
                return self.retry_or_raise(exc, self.lock.close)
            return None

        self.wait(attempt)

    # --- migrate ---

    def take_lock(self) -> float:
        self.run.phase = "lock"
        lock = self.lock

        def attempt() -> Awaited | None:
            try:
                self.ensure_connected()
                got = lock.try_lock()
            except Exception as exc:
                return self.retry_or_raise(exc, lock.close)
            if got is True:
                return None
            if got is False:
                raise error_for(
                    Reason.MIGRATION_POOLER,
                    f"this session's server connection already holds the migration lock "
                    f"{lock.key} (taken by another client of a pooler, or leaked there)",
                )
            assert isinstance(got, Holder)
            return Awaited(
                error_for(
                    Reason.MIGRATION_LOCK_HELD,
                    f"the migration lock {lock.key} is still held by {got.describe()}",
                ),
                {"reason": Reason.MIGRATION_LOCK_HELD.value, "lock_key": lock.key, **got.fields()},
            )

        return self.wait(attempt)

    def connect_django(self, alias: str) -> None:
        from django.db import connections

        self.run.phase = "django"
        conn = connections[alias]

        def attempt() -> Awaited | None:
            try:
                conn.ensure_connection()
            except Exception as exc:
                return self.retry_or_raise(exc, conn.close)
            return None

        self.wait(attempt)

    def verify(self, before: str) -> None:
        """Stop unless the lock's session still holds the lock."""
        if not self.postgres:
            return
        cause = "the server no longer lists it as this session's"
        try:
            held = self.lock.holds()
        except Exception as exc:
            held = False
            cause = driver_error(exc).message
        if held:
            return
        self.run.log.emit(
            "warning",
            _events.MIGRATE_LOCK_LOST,
            lock_key=self.lock.key,
            pid=self.lock.pid,
            before=before,
            reason=cause,
        )
        self.lock.close()
        raise error_for(
            Reason.MIGRATION_LOCK_LOST,
            f"the migration lock {self.lock.key} was lost before {before}: its session "
            f"(pid {self.lock.pid}) ended or let it go ({cause}); nothing more was started",
        )

    def migrate(
        self, alias: str, commands: list[list[str]], *, skip_checks: bool, lock_timeout: float
    ) -> int:
        from django.db import connections

        self.connect()
        waited = 0.0
        if self.postgres:
            waited = self.take_lock()
            self.run.log.emit(
                "info",
                _events.MIGRATE_LOCKED,
                lock_key=self.lock.key,
                waited=waited,
                pid=self.lock.pid,
            )
        self.connect_django(alias)
        self.run.bounded = False  # the work: not cut short by the deadline
        self.run.awaited = None
        self.run.phase = "migrate"
        pending = unapplied(connections[alias])
        lock_timeout = lock_timeout if self.postgres else 0.0
        with _BlockerSampler(self.lock, alias, lock_timeout) as sampler:
            migrate_with_retries(
                alias,
                skip_checks=skip_checks,
                before_each=lambda name: self.verify(f"migration {name}"),
                lock_timeout=lock_timeout,
                blockers=sampler.take,
                report=self.report_lock_timeout,
            )
        self.run.log.emit("info", _events.MIGRATE_MIGRATED, applied=pending)
        for words in commands:
            self.run.phase = "follow-up"
            self.verify(f"--then {words[0]}")
            started = time.monotonic()
            follow_up(words)
            self.run.log.emit(
                "info",
                _events.MIGRATE_COMMAND,
                command=words[0],
                elapsed=round(time.monotonic() - started, 3),
            )
        self.verify("the release")
        if self.postgres:
            self.lock.release()
        connections.close_all()
        self.run.log.emit("info", _events.MIGRATE_DONE, waited=waited, elapsed=self.run.elapsed())
        return 0

    def report_lock_timeout(
        self, migration: str, attempt: int, pause: float, blockers: list[str]
    ) -> None:
        self.run.log.emit(
            "warning",
            _events.MIGRATE_LOCK_TIMEOUT,
            migration=migration,
            attempt=attempt,
            next_delay=pause,
            blockers=blockers,
        )

    # --- check ---

    def check(self) -> int:
        self.connect()
        self.run.phase = "schema"
        lock = self.lock

        def attempt() -> Awaited | None:
            try:
                self.ensure_connected()
                pending = unapplied(lock.conn)
                holder = lock.holder() if self.postgres and not pending else None
            except Exception as exc:
                return self.retry_or_raise(exc, lock.close)
            if pending:
                return Awaited(
                    error_for(
                        Reason.MIGRATIONS_PENDING,
                        f"{len(pending)} migration(s) not applied: {', '.join(pending)}",
                    ),
                    {"reason": Reason.MIGRATIONS_PENDING.value, "unapplied": pending},
                )
            if holder is not None:
                return Awaited(
                    error_for(
                        Reason.MIGRATION_LOCK_HELD,
                        f"the migration lock {lock.key} is still held by {holder.describe()}",
                    ),
                    {
                        "reason": Reason.MIGRATION_LOCK_HELD.value,
                        "lock_key": lock.key,
                        **holder.fields(),
                    },
                )
            return None

        waited = self.wait(attempt)
        self.run.log.emit(
            "info", _events.MIGRATE_CURRENT, waited=waited, elapsed=self.run.elapsed()
        )
        return 0


if __name__ == "__main__":  # python -m preflight.django migrate [--then CMD ...] | --check
    raise SystemExit(main())
