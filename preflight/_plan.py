"""The connection plan: settings + host classification + SSL mode choice.

Importable without psycopg (the Django helper uses it); ``conninfo()`` imports
psycopg only when called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import _env
from ._env import DatabaseSettings, Options, Secret
from ._hosts import HostClass, Kind, classify_host, cnpg_role
from ._sslmode import choose_sslmode


class Plan(NamedTuple):
    """How to reach the database, and why."""

    kind: Kind
    evidence: str
    role: str | None
    host: str
    port: int
    database: str
    user: str
    password: Secret | None
    password_source: str | None
    password_file: str | None
    sslmode: str
    sslmode_source: str
    sslrootcert: str | None
    target_session_attrs: str | None
    warnings: tuple[str, ...]
    source: str
    gssencmode: str = "disable"

    def current_password(self) -> Secret | None:
        """The password now: a mounted secret file is read again on every call."""
        if self.password_file is not None:
            try:
                return _env.read_password_file(self.password_file)
            except (OSError, UnicodeDecodeError):
                return self.password
        return self.password

    def libpq_params(self) -> dict[str, Any]:
        """Connection parameters for libpq, without the password."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "sslmode": self.sslmode,
            "gssencmode": self.gssencmode,
            "application_name": "preflight",
        }
        if self.sslrootcert is not None:
            params["sslrootcert"] = self.sslrootcert
        if self.target_session_attrs is not None:
            params["target_session_attrs"] = self.target_session_attrs
        return params

    def conninfo(self, connect_timeout: int) -> str:
        """The libpq connection string, built by psycopg (never by concatenation)."""
        from psycopg.conninfo import make_conninfo

        params = self.libpq_params()
        password = self.current_password()
        if password is not None:
            params["password"] = password.reveal()
        return make_conninfo("", connect_timeout=connect_timeout, **params)

    def secrets(self) -> list[str]:
        """Values that must never be printed."""
        password = self.current_password()
        found = [p.reveal() for p in (self.password, password) if p is not None]
        return [s for s in found if s]

    def explain(self) -> dict[str, Any]:
        """The plan as a JSON-ready dict; the password appears only as set/unset."""
        return {
            "engine": "postgresql",
            "kind": self.kind.value,
            "evidence": self.evidence,
            "role": self.role,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": "set" if self.password is not None else "unset",
            "password_source": self.password_source,
            "sslmode": self.sslmode,
            "sslmode_source": self.sslmode_source,
            "sslrootcert": self.sslrootcert,
            "gssencmode": self.gssencmode,
            "target_session_attrs": self.target_session_attrs,
            "source": self.source,
            "warnings": list(self.warnings),
        }


def classify(settings: DatabaseSettings) -> HostClass:
    """Classify the host, unless ``SQL_CONNECTION_TYPE`` names the kind."""
    assert settings.host is not None
    if settings.connection_type is not None:
        kind = settings.connection_type
        role = cnpg_role(settings.host) if kind is Kind.CLOUDNATIVEPG else None
        detected = classify_host(settings.host).kind
        evidence = (
            f"SQL_CONNECTION_TYPE={kind.value} overrides detection (detected {detected.value})"
        )
        return HostClass(kind, evidence, role)
    return classify_host(settings.host)


def resolve(settings: DatabaseSettings) -> Plan:
    """Turn validated PostgreSQL settings into a plan (pure, no network)."""
    assert settings.engine == "postgresql"
    assert settings.host
    assert settings.database
    assert settings.user
    host_class = classify(settings)
    ssl = choose_sslmode(host_class.kind, settings.sslmode, settings.sslrootcert)
    warnings = list(ssl.warnings)
    rootcert = settings.sslrootcert
    if rootcert and rootcert != "system" and ssl.mode != "disable" and not os.path.exists(rootcert):
        warnings.append(f"SQL_SSL_ROOT_CERT file {rootcert} does not exist here")
    attrs = (
        "read-write" if host_class.kind is Kind.CLOUDNATIVEPG and host_class.role == "rw" else None
    )
    return Plan(
        kind=host_class.kind,
        evidence=host_class.evidence,
        role=host_class.role,
        host=settings.host,
        port=settings.port,
        database=settings.database,
        user=settings.user,
        password=settings.password,
        password_source=settings.password_source,
        password_file=settings.password_file,
        sslmode=ssl.mode,
        sslmode_source=ssl.source,
        sslrootcert=rootcert,
        target_session_attrs=attrs,
        warnings=tuple(warnings),
        source=settings.source,
    )


def explain_options(options: Options) -> dict[str, Any]:
    return {
        "timeout": options.timeout,
        "connect_timeout": options.connect_timeout,
        "backoff_initial": options.backoff_initial,
        "backoff_max": options.backoff_max,
        "jitter": options.jitter,
        "require_extensions": list(options.require_extensions),
        "retry_auth": options.retry_auth,
    }


def explain(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The whole ``preflight explain`` document (raises ConfigError when invalid)."""
    settings, options = _env.load(environ, overrides)
    if settings.engine == "sqlite":
        return {
            "engine": "sqlite",
            "kind": None,
            "database": settings.database,
            "check": "skipped: SQLite has no server to check",
            "warnings": [],
        }
    document = resolve(settings).explain()
    document["preflight"] = explain_options(options)
    return document
