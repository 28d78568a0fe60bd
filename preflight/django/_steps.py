"""What the runner does with Django: load the settings, migrate as ``manage.py migrate``
does (system checks included), run the follow-up commands, read the plan.

Each step fails with the preflight's own errors (``_errors``), never a bare exception.
"""

from __future__ import annotations

import os
import sys
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


def migrate(alias: str, *, skip_checks: bool, before_each: Callable[[str], None]) -> None:
    """``manage.py migrate --database ALIAS [--skip-checks]``, calling ``before_each`` with
    each migration's name right before it is applied (Django's own progress callback)."""
    from django.core.management import call_command, get_commands, load_command_class
    from django.core.management.base import SystemCheckError

    if skip_checks:
        load_urlconf()
    # The app's own migrate command if it overrides Django's, as manage.py would run.
    command: Any = load_command_class(get_commands()["migrate"], "migrate")
    report = command.migration_progress_callback

    def progress(action: str, migration: Any = None, fake: bool = False) -> None:
        if action == "apply_start":
            before_each(f"{migration.app_label}.{migration.name}")
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
    except PreflightError:
        raise
    except SystemCheckError as exc:
        raise error_for(Reason.SYSTEM_CHECKS_FAILED, str(exc)) from None
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise error_for(
                Reason.MIGRATION_FAILED, f"migrate failed: exited with {exc.code}"
            ) from None
    except Exception as exc:
        raise error_for(
            Reason.MIGRATION_FAILED,
            f"migrate failed: {type(exc).__name__}: {exc}",
            hint="read the error above; the failed migration was rolled back (PostgreSQL "
            "runs each migration in a transaction) and the lock released, so the next "
            "runner retries it",
        ) from None


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
