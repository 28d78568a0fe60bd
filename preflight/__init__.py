"""preflight: wait until a Django app's PostgreSQL really accepts a login.

The data flows one way, each step in its own private module:

- environment -> settings: ``_settings`` (``SQL_*``, ``DATABASE_URL``; ``_url``),
  ``_options`` (``PREFLIGHT_*``), ``_values`` (parsers), ``_config`` (one pass)
- settings -> plan: ``_hosts`` (classification), ``_sslmode`` (SSL choice),
  ``_trust`` (``system`` CA), ``_libpq_env`` (``PG*``), ``_plan``
- plan -> attempt: ``_dns`` (lookup under the deadline), ``_probe`` (one
  attempt), ``_failures`` (messages -> reasons), ``_retry`` (backoff), ``_deadline``,
  ``_check`` (the loop, with an instrumentation hook)
- attempt -> outcome: ``_exit_codes`` (classes, reasons, exit codes), ``_errors``,
  ``_events``, ``_redact``, ``_explain``, ``_logging``, ``_termination``,
  ``_signals``, ``_cli``
- ``django/`` (standard library and Django only, nothing else): ``database_config()``
  for the app's settings; ``__main__``: ``python -m preflight.django migrate``

The public API is verbs: :func:`check` (wait for the database, as the command line
does) and :func:`explain` (the plan, as ``preflight explain`` prints it), with
``_api`` the one path both share with ``_cli``; the errors, :class:`Reason` and
:class:`ExitClass`.  Importing this package imports only the standard library:
the retry loop, psycopg and tenacity load on the first :func:`check`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._api import Outcome, check, explain
from ._errors import (
    AuthFailed,
    CheckFailed,
    ConfigError,
    DatabaseMissing,
    Interrupted,
    PreflightError,
    Problem,
    TlsFailed,
    Unreachable,
    UsageError,
)
from ._exit_codes import ExitClass, Reason

if TYPE_CHECKING:
    __version__: str  # read from the installed metadata on first access

# The distribution whose installed metadata holds the version (written once, in
# pyproject.toml); ``__version__`` is read from it on first access.
DISTRIBUTION = "django-db-preflight"

__all__ = [
    "AuthFailed",
    "CheckFailed",
    "ConfigError",
    "DatabaseMissing",
    "ExitClass",
    "Interrupted",
    "Outcome",
    "PreflightError",
    "Problem",
    "Reason",
    "TlsFailed",
    "Unreachable",
    "UsageError",
    "check",
    "explain",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version(DISTRIBUTION)
    raise AttributeError(f"module 'preflight' has no attribute {name!r}")
