"""The connection plan: settings + host classification + SSL choice + libpq's environment.

:func:`build_plan` is the one function that turns settings into a plan; the
check, ``explain`` and the Django helper all call it, and
:meth:`Plan.libpq_params` is the one place the libpq parameters are built.
Pure standard library (the Django helper imports it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from ._errors import Problem
from ._hosts import HostClass, Kind, classify_host, cnpg_role
from ._libpq_env import LibpqEnv, read_libpq_env
from ._settings import DatabaseSettings
from ._sslmode import SslChoice, choose_sslmode
from ._trust import SYSTEM, looked_for, system_bundle


class Plan(NamedTuple):
    """How to reach the database, and why."""

    settings: DatabaseSettings
    host_class: HostClass
    ssl: SslChoice
    sslrootcert: str | None  # the file libpq gets (``system`` resolved to the OS bundle)
    target_session_attrs: str | None
    libpq_env: LibpqEnv
    warnings: tuple[str, ...]

    @property
    def host(self) -> str:
        assert self.settings.host is not None
        return self.settings.host

    @property
    def kind(self) -> Kind:
        return self.host_class.kind

    @property
    def role(self) -> str | None:
        return self.host_class.role

    def libpq_params(self) -> dict[str, str]:
        """The connection parameters both the check and the app pass, without the password.

        Only parameters libpq 10 and later know, so the app's driver (psycopg2
        with libpq 15, or psycopg 3) understands every one.
        """
        settings = self.settings
        assert settings.database is not None
        assert settings.user is not None
        params = {
            "host": self.host,
            "port": str(settings.port),
            "dbname": settings.database,
            "user": settings.user,
            "sslmode": self.ssl.mode,
            "gssencmode": "disable",  # GSSAPI must never silently replace TLS
        }
        if self.sslrootcert is not None:
            params["sslrootcert"] = self.sslrootcert
        if self.target_session_attrs is not None:
            params["target_session_attrs"] = self.target_session_attrs
        return params


class PlanResult(NamedTuple):
    plan: Plan | None
    problems: tuple[Problem, ...]


def _classify(settings: DatabaseSettings) -> HostClass:
    """Classify the host, unless ``SQL_CONNECTION_TYPE`` names the kind."""
    assert settings.host is not None
    detected = classify_host(settings.host)
    kind = settings.connection_type
    if kind is None:
        return detected
    role = cnpg_role(settings.host) if kind is Kind.CLOUDNATIVEPG else None
    evidence = f"SQL_CONNECTION_TYPE={kind.value} overrides detection (detected {detected.kind})"
    return HostClass(kind, evidence, role, detected.pooler and kind is Kind.CLOUDNATIVEPG)


def build_plan(settings: DatabaseSettings, environ: Mapping[str, str]) -> PlanResult:
    """Turn valid PostgreSQL settings into a plan (no network), or say what is wrong."""
    assert settings.engine == "postgresql"
    assert settings.host
    host_class = _classify(settings)
    problems: list[Problem] = []
    system = settings.sslrootcert == SYSTEM
    rootcert = settings.sslrootcert
    if system:
        rootcert = system_bundle(environ)
        if rootcert is None:
            problems.append(
                Problem(
                    "SQL_SSL_ROOT_CERT",
                    "is 'system' but no trust store file was found (looked for "
                    f"{looked_for(environ)}); install ca-certificates or set the CA file path",
                )
            )
    attrs = "read-write" if host_class.role == "rw" and not host_class.pooler else None
    libpq_env = read_libpq_env(
        environ,
        password_set=settings.password is not None,
        rootcert_set=rootcert is not None,
        target_session_attrs_set=attrs is not None,
    )
    ssl = choose_sslmode(
        host_class.kind,
        settings.sslmode,
        rootcert,
        system=system,
        libpq_rootcert=None if rootcert else (environ.get("PGSSLROOTCERT") or None),
        socket=settings.host.startswith("/"),
    )
    if ssl.problem is not None:
        problems.append(Problem("SQL_SSL_MODE", ssl.problem))
    warnings = list(ssl.warnings)
    if rootcert and not system and ssl.mode != "disable" and not os.path.exists(rootcert):
        warnings.append(f"SQL_SSL_ROOT_CERT file {rootcert} does not exist here")
    if host_class.pooler:
        warnings.append(
            "the host is a connection pooler: a ready pooler proves the database behind it "
            "answered a login, which is what the check waits for"
        )
    if settings.host.endswith(".") and not settings.host.startswith("/"):
        warnings.append(
            "SQL_HOST ends in a dot: certificates never name the dotted form, so "
            "verify-full fails; drop the trailing dot"
        )
    warnings.extend(libpq_env.warnings)
    if problems:
        return PlanResult(None, tuple(problems))
    plan = Plan(settings, host_class, ssl, rootcert, attrs, libpq_env, tuple(warnings))
    return PlanResult(plan, ())
