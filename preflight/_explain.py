"""The plan as a JSON document: ``preflight explain`` and the ``preflight.plan`` event.

Configuration values are shown as they are, unless one is or carries the
password: then the whole value is withheld (never part of it, which would
reveal the password through the text around it) and a warning names the
variable that seems to hold it.
"""

from __future__ import annotations

from typing import Any

from ._config import Config
from ._errors import ConfigError
from ._plan import Plan
from ._redact import WITHHELD, Redactor


class _Shown:
    """Shows configuration values through the redactor, collecting why any was withheld."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.withheld: list[str] = []

    def __call__(self, variable: str, value: str | None) -> str | None:
        if value is None or not self.redactor.carries(value):
            return value
        why = f"{variable} seems to hold the password (or carry it): its value is withheld"
        if why not in self.withheld:
            self.withheld.append(why)
        return WITHHELD


def _parameters(plan: Plan, shown: _Shown) -> dict[str, str | None]:
    """The URL's further libpq parameters; a secret one only as ``set``."""
    if not plan.settings.params:
        return {}
    from ._url import SECRET_PARAMETERS  # loaded only when DATABASE_URL gave parameters

    return {
        name: "set" if name in SECRET_PARAMETERS else shown(f"DATABASE_URL {name}", value)
        for name, value in plan.settings.params
    }


def plan_document(plan: Plan, redactor: Redactor) -> dict[str, Any]:
    """The plan's fields; the password appears only as set/unset."""
    settings = plan.settings
    shown = _Shown(redactor)
    host_variable = "DATABASE_URL" if settings.source == "DATABASE_URL" else "SQL_HOST"
    host = shown(host_variable, plan.host)
    document: dict[str, Any] = {
        "engine": "postgresql",
        "kind": plan.kind.value,
        "evidence": plan.host_class.evidence if host == plan.host else WITHHELD,
        "role": plan.role,
        "pooler": plan.host_class.pooler,
        "host": host,
        "port": settings.port,
        "database": shown("SQL_DATABASE", settings.database),
        "user": shown("SQL_USER", settings.user),
        "password": "set" if settings.password is not None else "unset",
        "password_source": settings.password_source,
        "sslmode": plan.ssl.mode,
        "sslmode_source": plan.ssl.source,
        "sslrootcert": shown("SQL_SSL_ROOT_CERT", plan.sslrootcert),
        "gssencmode": "disable",
        "target_session_attrs": plan.target_session_attrs,
        "source": settings.source,
        "parameters": _parameters(plan, shown),
        "libpq_env": {name: shown(name, value) for name, value in plan.libpq_env.variables.items()},
        "warnings": [*shown.withheld, *map(redactor.text, plan.warnings)],
    }
    return document


def explain(config: Config, redactor: Redactor) -> tuple[dict[str, Any], int]:
    """The whole ``preflight explain`` document, every value through ``redactor``, and
    its exit code (``preflight.explain()`` and the command line both use it)."""
    document, code = _explain(config, redactor)
    redacted = redactor.document(document)
    assert isinstance(redacted, dict)
    return redacted, code


def _explain(config: Config, redactor: Redactor) -> tuple[dict[str, Any], int]:
    error = config.error()
    if error is not None:
        document = error_document(error, redactor)
        document["warnings"] = [redactor.text(w) for w in config.warnings]
        return document, error.exit_code
    warnings = [redactor.text(w) for w in config.warnings]
    if config.plan is None:  # SQLite
        return {
            "engine": "sqlite",
            "kind": None,
            "database": config.settings.database,
            "check": "skipped: SQLite has no server to check",
            "warnings": warnings,
        }, 0
    document = plan_document(config.plan, redactor)
    document["warnings"] = [*document["warnings"], *warnings]
    options = config.options
    document["preflight"] = {
        "timeout": options.timeout,
        "connect_timeout": options.connect_timeout,
        "backoff_initial": options.backoff_initial,
        "backoff_max": options.backoff_max,
        "jitter": options.jitter,
        "require_extensions": list(options.require_extensions),
        "create_extensions": options.create_extensions,
        "retry_auth": options.retry_auth,
    }
    return document, 0


def error_document(error: ConfigError, redactor: Redactor) -> dict[str, Any]:
    return {
        "error": error.exit_class.name,
        "exit_code": error.exit_code,
        "problems": [
            {"variable": p.variable, "message": redactor.text(p.message)} for p in error.problems
        ],
    }
