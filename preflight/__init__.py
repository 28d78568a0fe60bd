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

Importing this package imports only the standard library, and only what is used:
the names below load their module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str  # read from the installed metadata on first access

    from ._config import Config, load
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
    from ._hosts import HostClass, Kind, classify_host
    from ._options import Options
    from ._plan import Plan, build_plan
    from ._settings import DatabaseSettings, Secret, read_settings
    from ._sslmode import choose_sslmode

# The distribution whose installed metadata holds the version (written once, in
# pyproject.toml); ``__version__`` is read from it on first access.
DISTRIBUTION = "django-db-preflight"

# name -> the private module that defines it
_WHERE = {
    "Config": "_config",
    "load": "_config",
    "AuthFailed": "_errors",
    "CheckFailed": "_errors",
    "ConfigError": "_errors",
    "DatabaseMissing": "_errors",
    "Interrupted": "_errors",
    "PreflightError": "_errors",
    "Problem": "_errors",
    "TlsFailed": "_errors",
    "Unreachable": "_errors",
    "UsageError": "_errors",
    "ExitClass": "_exit_codes",
    "Reason": "_exit_codes",
    "HostClass": "_hosts",
    "Kind": "_hosts",
    "classify_host": "_hosts",
    "Options": "_options",
    "Plan": "_plan",
    "build_plan": "_plan",
    "DatabaseSettings": "_settings",
    "Secret": "_settings",
    "read_settings": "_settings",
    "choose_sslmode": "_sslmode",
}

__all__ = [
    "AuthFailed",
    "CheckFailed",
    "Config",
    "ConfigError",
    "DatabaseMissing",
    "DatabaseSettings",
    "ExitClass",
    "HostClass",
    "Interrupted",
    "Kind",
    "Options",
    "Plan",
    "PreflightError",
    "Problem",
    "Reason",
    "Secret",
    "TlsFailed",
    "Unreachable",
    "UsageError",
    "build_plan",
    "choose_sslmode",
    "classify_host",
    "load",
    "read_settings",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version(DISTRIBUTION)
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
