"""preflight: wait until a Django app's PostgreSQL really accepts a login.

The public API is small; everything else lives in private modules:

- ``_env``: the environment contract (``SQL_*``, ``DATABASE_URL``, ``PREFLIGHT_*``)
- ``_hosts``: host classification
- ``_sslmode``: SSL mode choice
- ``_plan``: the connection plan built from those three
- ``_probe``: one connection attempt against the server
- ``_failures``: psycopg errors mapped to reasons and hints
- ``_exit_codes``: failure classes mapped to exit codes
- ``_retry``: the backoff, jitter and deadline policy
- ``_check``: the retry loop around the probe
- ``_cli``, ``_logging``, ``_signals``, ``_termination``: the process around it
- ``django``: ``database_config()`` for the app's settings
"""

from ._env import DatabaseSettings, Options, Secret, load
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
)
from ._hosts import HostClass, Kind, classify_host
from ._plan import Plan, explain, resolve
from ._sslmode import choose_sslmode

__all__ = [
    "AuthFailed",
    "CheckFailed",
    "ConfigError",
    "DatabaseMissing",
    "DatabaseSettings",
    "HostClass",
    "Interrupted",
    "Kind",
    "Options",
    "Plan",
    "PreflightError",
    "Problem",
    "Secret",
    "TlsFailed",
    "Unreachable",
    "choose_sslmode",
    "classify_host",
    "explain",
    "load",
    "resolve",
]
