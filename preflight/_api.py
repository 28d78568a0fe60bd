"""The verbs: :func:`check` waits for the database as ``preflight`` does, :func:`explain`
returns what ``preflight explain`` prints.

Both read the environment in one pass (``_config.load``).  :func:`run` is the one
path from that reading to an :class:`Outcome`: the command line calls it with its
logging hooks, :func:`check` calls it with the caller's hook, so the two cannot
diverge.  Neither configures logging or installs a signal handler; in the main
thread the deadline interrupts a hung attempt with ``SIGALRM``, whose previous
handler is put back when the check ends.  The retry loop, psycopg and tenacity are
imported on the first :func:`check`, not with this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import UsageError
from ._exit_codes import Reason

if TYPE_CHECKING:
    from ._check import RetryDetails
    from ._config import Config
    from ._plan import Plan
    from ._probe import ServerFacts


class Outcome(NamedTuple):
    """A database that accepted the login and answered (a failure raises instead)."""

    facts: ServerFacts | None  # version, TLS, recovery, extensions; None: SQLite, no server
    attempts: int  # connection attempts made (0 for SQLite)
    elapsed: float  # seconds from the start of the check to ready


def _ignore(_details: RetryDetails) -> None:
    return None


def run(
    config: Config,
    *,
    on_plan: Callable[[Plan], None] | None = None,
    on_retry: Callable[[RetryDetails], None] | None = None,
    started: float | None = None,
) -> Outcome:
    """The check for a loaded configuration: raises the :class:`PreflightError` that ends it.

    ``on_plan`` sees the plan before the first attempt; ``on_retry`` each failed
    attempt that will be retried; ``started`` is when the deadline starts counting
    (the process start, for the command line; now, by default).  An error from the
    retry loop carries ``attempts`` and ``elapsed``.
    """
    error = config.error()
    if error is not None:
        raise error
    plan = config.plan
    if plan is None:  # SQLite: no server to wait for
        return Outcome(None, 0, 0.0)
    if on_plan is not None:
        on_plan(plan)
    from ._check import check as loop
    from ._deadline import Deadline

    options = config.options
    deadline = Deadline(options.timeout, start=started)
    ended = loop(plan, options, on_retry=on_retry or _ignore, deadline=deadline)
    if ended.error is not None:
        ended.error.attempts = ended.attempts
        ended.error.elapsed = ended.elapsed
        raise ended.error
    return Outcome(ended.facts, ended.attempts, ended.elapsed)


def _timeout(value: object) -> float:
    """``timeout=`` validated as ``--timeout`` is: seconds from 0 (no deadline) up."""
    from ._options import SPECS

    (spec,) = [spec for spec in SPECS if spec.name == "timeout"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"timeout={value!r} is not a number of seconds", reason=Reason.USAGE)
    try:
        parsed = spec.parse(repr(float(value)))
    except ValueError as exc:
        raise UsageError(f"timeout: {exc}", reason=Reason.USAGE) from None
    assert isinstance(parsed, float)
    return parsed


def check(
    environ: Mapping[str, str] | None = None,
    *,
    timeout: float | None = None,
    on_retry: Callable[[RetryDetails], None] | None = None,
) -> Outcome:
    """Wait until the app's PostgreSQL accepts a login and answers, as ``preflight`` does.

    ``environ`` (default ``os.environ``) holds the app's ``SQL_*``/``DATABASE_URL`` and
    the ``PREFLIGHT_*`` knobs; ``timeout`` overrides ``PREFLIGHT_TIMEOUT`` (0: no
    deadline); ``on_retry`` is called with each failed attempt that will be retried.
    Returns the :class:`Outcome` when ready; raises the :class:`PreflightError`
    subclass of the failure class otherwise (its ``exit_code`` is the CLI's).
    """
    from ._config import load

    environ = os.environ if environ is None else environ
    overrides = None if timeout is None else {"timeout": _timeout(timeout)}
    return run(load(environ, overrides), on_retry=on_retry)


def explain(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``preflight explain`` prints for ``environ`` (default ``os.environ``): the
    plan, or the configuration problems; no network, the password never shown."""
    from ._config import load
    from ._explain import explain as document
    from ._redact import Redactor

    config = load(os.environ if environ is None else environ)
    return document(config, Redactor(config.secrets))[0]
