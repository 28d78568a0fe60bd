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
from ._hosts import HostClass, Kind, classify_host, cnpg_role, has_trailing_dot, is_socket
from ._libpq_env import LibpqEnv, read_libpq_env
from ._result import Found
from ._settings import DatabaseSettings
from ._sslmode import URL_NAMES, VARIABLE_NAMES, SslMode, SslNames, choose_sslmode
from ._trust import SYSTEM, looked_for, system_bundle


class Plan(NamedTuple):
    """How to reach the database, and why."""

    settings: DatabaseSettings
    host_class: HostClass
    ssl: SslMode
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

    @property
    def hostaddr(self) -> str | None:
        """Where libpq connects without DNS: ``hostaddr`` in the URL, or ``PGHOSTADDR``."""
        return dict(self.settings.params).get("hostaddr") or self.libpq_env.hostaddr

    def libpq_params(self) -> dict[str, str]:
        """The connection parameters both the check and the app pass, without the password.

        Only parameters libpq 10 and later know, so the app's driver (psycopg2
        with libpq 15, or psycopg 3) understands every one; and after them every libpq
        parameter the URL gives (``options``, ``sslcert``, ``application_name``...),
        which win over the plan's own ``gssencmode`` and ``target_session_attrs``.
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
        params.update(settings.params)
        return params

    @property
    def pooler(self) -> bool:
        """The host is a connection pooler (PgBouncer), by the plan's classification."""
        return self.host_class.pooler


PlanResult = Found[Plan | None]


def _classify(settings: DatabaseSettings) -> HostClass:
    """Classify the host, unless ``SQL_CONNECTION_TYPE`` names the kind."""
    assert settings.host is not None
    detected = classify_host(settings.host, settings.cluster_domain)
    kind = settings.connection_type
    if kind is None:
        return detected
    role = cnpg_role(settings.host) if kind is Kind.CLOUDNATIVEPG else None
    evidence = f"SQL_CONNECTION_TYPE={kind.value} overrides detection (detected {detected.kind})"
    return HostClass(kind, evidence, role, detected.pooler and kind is Kind.CLOUDNATIVEPG)


def _names(settings: DatabaseSettings) -> SslNames:
    """Messages name the SSL settings where they came from: a variable or the URL."""
    mode = "SQL_SSL_MODE" in settings.from_url
    rootcert = "SQL_SSL_ROOT_CERT" in settings.from_url
    return SslNames(
        URL_NAMES.mode if mode else VARIABLE_NAMES.mode,
        URL_NAMES.rootcert if rootcert else VARIABLE_NAMES.rootcert,
        URL_NAMES.variable if mode or rootcert else VARIABLE_NAMES.variable,
    )


def build_plan(settings: DatabaseSettings, environ: Mapping[str, str]) -> PlanResult:
    """Turn valid PostgreSQL settings into a plan (no network), or say what is wrong."""
    assert settings.engine == "postgresql"
    assert settings.host
    host_class = _classify(settings)
    names = _names(settings)
    problems: list[Problem] = []
    system = settings.sslrootcert == SYSTEM
    rootcert = system_bundle(environ) if system else settings.sslrootcert
    if system and rootcert is None:
        url = "SQL_SSL_ROOT_CERT" in settings.from_url
        problems.append(
            Problem(
                "DATABASE_URL" if url else "SQL_SSL_ROOT_CERT",
                f"{'sslrootcert ' if url else ''}is 'system' but no trust store file was found "
                f"(looked for {looked_for(environ)}); install ca-certificates or set the CA "
                "file path",
            )
        )
    attrs = "read-write" if host_class.role == "rw" and not host_class.pooler else None
    attrs = dict(settings.params).get("target_session_attrs", attrs)  # the URL's wins
    libpq_env, _, env_warnings = read_libpq_env(
        environ,
        password_set=settings.password is not None,
        rootcert_set=rootcert is not None,
        target_session_attrs_set=attrs is not None,
    )
    ssl, ssl_problems, ssl_warnings = choose_sslmode(
        host_class.kind,
        settings.sslmode,
        rootcert,
        system=system,
        libpq_rootcert=None if rootcert else (environ.get("PGSSLROOTCERT") or None),
        socket=is_socket(settings.host),
        names=names,
    )
    problems.extend(ssl_problems)
    warnings = list(ssl_warnings)
    if rootcert and not system and ssl.mode != "disable" and not os.path.exists(rootcert):
        warnings.append(f"{names.rootcert} file {rootcert} does not exist here")
    if host_class.pooler:
        warnings.append(
            "the host is a connection pooler: a ready pooler proves the database behind it "
            "answered a login, which is what the check waits for"
        )
    if has_trailing_dot(settings.host):
        warnings.append(
            f"{'the host' if 'SQL_HOST' in settings.from_url else 'SQL_HOST'} ends in a dot: "
            "certificates never name the dotted form, so "
            "verify-full fails; drop the trailing dot"
        )
    warnings.extend(env_warnings)
    if problems:
        return Found(None, tuple(problems), tuple(warnings))
    plan = Plan(settings, host_class, ssl, rootcert, attrs, libpq_env, tuple(warnings))
    return Found(plan, (), tuple(warnings))
