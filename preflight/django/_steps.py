"""What the runner does with Django: load the settings, migrate as ``manage.py migrate``
does (system checks included), run the follow-up commands, read the plan.

Each step fails with the preflight's own errors (``_errors``), never a bare exception.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import PreflightError, error_for
from .._exit_codes import Reason


def setup_django(settings: str | None, env: Mapping[str, str]) -> None:
    """``django.setup()`` for ``settings`` or ``$DJANGO_SETTINGS_MODULE``, as manage.py does."""
    module = settings or env.get("DJANGO_SETTINGS_MODULE", "")
    if not module:
        raise error_for(
            Reason.CONFIG_INVALID,
            "no Django settings: DJANGO_SETTINGS_MODULE is unset and --settings not given",
            hint="set DJANGO_SETTINGS_MODULE as manage.py does, or pass --settings",
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        import django

        django.setup()
    except Exception as exc:
        raise error_for(
            Reason.CONFIG_INVALID,
            f"the settings {module} cannot be loaded: {type(exc).__name__}: {exc}",
            hint="fix the settings (manage.py check shows the same error)",
        ) from None


def unapplied(connection: Any) -> list[str]:
    """``app.migration`` names still to apply, in order, as ``migrate`` would plan them."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def load_urlconf() -> None:
    """Import the root URLconf, as the system checks would: models that only it
    registers must be known before ``migrate`` compares models and migrations."""
    from django.conf import settings

    root = getattr(settings, "ROOT_URLCONF", None)
    if not root:
        return
    try:
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - the import is the point
    except Exception as exc:
        raise error_for(
            Reason.SYSTEM_CHECKS_FAILED,
            f"the URLconf {root} cannot be imported: {type(exc).__name__}: {exc}",
        ) from None


# PREFLIGHT_MIGRATE_LOCK_TIMEOUT: each migration tried this many times at most, with a
# pause of 0.5 s doubling to 4 s between tries (half of each pause random).
LOCK_TIMEOUT_ATTEMPTS = 5
LOCK_TIMEOUT_PAUSE = (0.5, 4.0)
LOCK_NOT_AVAILABLE = "55P03"


class LockTimedOut(Exception):
    """A migration's statement waited ``lock_timeout`` for a table lock (rolled back)."""

    def __init__(self, migration: str) -> None:
        super().__init__(migration)
        self.migration = migration


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is PostgreSQL's lock_not_available (55P03)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if code == LOCK_NOT_AVAILABLE:
            return True
        current = current.__cause__ or current.__context__
    return False


def _set_lock_timeout(alias: str, seconds: float) -> None:
    """``lock_timeout`` for Django's session (0: the role's own)."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        if seconds > 0:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false)", [f"{seconds * 1000:.0f}ms"]
            )
        else:
            cursor.execute("RESET lock_timeout")


def migrate(
    alias: str,
    *,
    skip_checks: bool,
    before_each: Callable[[str], None],
    lock_timeout: float = 0.0,
) -> None:
    """``manage.py migrate --database ALIAS [--skip-checks]``, calling ``before_each`` with
    each migration's name right before it is applied (Django's own progress callback).
    With ``lock_timeout`` each migration waits at most that long for a table lock
    (:class:`LockTimedOut`)."""
    from django.core.management import call_command, get_commands, load_command_class

    if skip_checks:
        load_urlconf()
    # The app's own migrate command if it overrides Django's, as manage.py would run.
    command: Any = load_command_class(get_commands()["migrate"], "migrate")
    report = command.migration_progress_callback
    current = ["migrate"]

    def progress(action: str, migration: Any = None, fake: bool = False) -> None:
        if action == "apply_start":
            current[0] = f"{migration.app_label}.{migration.name}"
            before_each(current[0])
            if lock_timeout > 0:
                _set_lock_timeout(alias, lock_timeout)
        report(action, migration, fake)

    command.migration_progress_callback = progress
    try:
        call_command(
            command,
            database=alias,
            interactive=False,
            verbosity=1,
            skip_checks=skip_checks,
            # Django's human output, warnings of the checks included, goes to stdout:
            # stderr carries the runner's JSON lines only.
            stderr=sys.stdout,
        )
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise error_for(
                Reason.MIGRATION_FAILED, f"migrate failed: exited with {exc.code}"
            ) from None
    except Exception as exc:
        raise _failure(exc, current[0] if lock_timeout > 0 else None) from None
    finally:
        if lock_timeout > 0:
            with contextlib.suppress(Exception):  # a broken connection: the error says why
                _set_lock_timeout(alias, 0)


def _failure(exc: Exception, migration: str | None) -> Exception:
    """What a failure of ``migrate`` is: the preflight's own error as it is, failing
    system checks, a lock timeout (when one was set), or a failed migration."""
    from django.core.management.base import SystemCheckError

    if isinstance(exc, PreflightError):
        return exc
    if isinstance(exc, SystemCheckError):
        return error_for(Reason.SYSTEM_CHECKS_FAILED, str(exc))
    if migration is not None and lock_not_available(exc):
        return LockTimedOut(migration)
    return error_for(
        Reason.MIGRATION_FAILED,
        f"migrate failed: {type(exc).__name__}: {exc}",
        hint="read the error above; the failed migration was rolled back (PostgreSQL "
        "runs each migration in a transaction) and the lock released, so the next "
        "runner retries it",
    )


def migrate_with_retries(
    alias: str,
    *,
    skip_checks: bool,
    before_each: Callable[[str], None],
    lock_timeout: float,
    blockers: Callable[[], list[str]],
    report: Callable[[str, int, float, list[str]], None],
    sleep: Callable[[float], Any] = time.sleep,
    rng: random.Random | None = None,
) -> None:
    """:func:`migrate`; with ``lock_timeout``, a migration that timed out waiting for a
    table lock is tried again (the system checks once), at most
    :data:`LOCK_TIMEOUT_ATTEMPTS` times, naming ``blockers()`` when it gives up."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    first, cap = LOCK_TIMEOUT_PAUSE
    for attempt in range(1, LOCK_TIMEOUT_ATTEMPTS + 1):
        try:
            migrate(
                alias,
                skip_checks=skip_checks or attempt > 1,
                before_each=before_each,
                lock_timeout=lock_timeout,
            )
            return
        except LockTimedOut as timed_out:
            found = blockers()
            if attempt == LOCK_TIMEOUT_ATTEMPTS:
                who = "; ".join(found) if found else "a session no longer visible"
                raise error_for(
                    Reason.MIGRATION_LOCK_TIMEOUT,
                    f"{timed_out.migration} waited {lock_timeout:g} s for a table lock "
                    f"{attempt} times and gave up; blocked by {who}",
                ) from None
            pause = round(min(cap, first * 2 ** (attempt - 1)) * (0.5 + 0.5 * rng.random()), 3)
            report(timed_out.migration, attempt, pause, found)
            sleep(pause)


def exit_status(code: object) -> int:
    """A follow-up's exit status as the runner's: 0 stays 0, 1-255 are kept, anything
    else (256, a negative number, a message) is 1, so no failure becomes 0 mod 256."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        return code
    return 1


class CommandFailed(PreflightError):
    """A ``--then`` command failed: its exit status is the run's (``exit_status``)."""

    def __init__(self, command: str, status: int, message: str) -> None:
        super().__init__(f"{command}: {message}", reason=Reason.FOLLOW_UP_FAILED)
        self.command = command
        self.status = status

    @property
    def exit_code(self) -> int:
        return self.status


def follow_up(words: list[str]) -> None:
    """Run one ``--then`` command; raises :class:`CommandFailed` when it fails."""
    from django.core.management import call_command

    try:
        call_command(*words)
    except SystemExit as exc:
        status = exit_status(exc.code)
        if status:
            raise CommandFailed(words[0], status, f"exited with {exc.code}") from None
    except Exception as exc:
        status = exit_status(getattr(exc, "returncode", 1)) or 1
        raise CommandFailed(words[0], status, f"{type(exc).__name__}: {exc}") from None
