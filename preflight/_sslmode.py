"""SSL mode choice: which libpq ``sslmode`` a kind of database gets.

Pure logic, no I/O.  ``DEFAULTS`` is what the SSL table in docs/configuration.md is
generated from.  In-cluster kinds get ``prefer``, libpq's own default: TLS wherever the
server offers it (CloudNativePG always does), plain text where it does not, and
a server that accepts only TLS works.  Outside the cluster TLS is required.
"""

from __future__ import annotations

from typing import NamedTuple

from ._errors import Problem
from ._hosts import Kind
from ._result import Found
from ._values import SSL_MODES

WEAK_MODES = frozenset({"disable", "allow", "prefer"})

# kind -> (default without SQL_SSL_ROOT_CERT, default with it)
DEFAULTS: dict[Kind, tuple[str, str]] = {
    Kind.LOCAL: ("prefer", "verify-ca"),
    Kind.INTERNAL: ("prefer", "verify-ca"),
    Kind.CLOUDNATIVEPG: ("prefer", "verify-ca"),
    Kind.AWS_RDS: ("require", "verify-full"),
    Kind.EXTERNAL: ("require", "verify-full"),
}


class SslNames(NamedTuple):
    """How messages name the SSL settings: the variables, or the URL's parameters."""

    mode: str = "SQL_SSL_MODE"
    rootcert: str = "SQL_SSL_ROOT_CERT"
    variable: str = "SQL_SSL_MODE"  # what a problem is filed under


VARIABLE_NAMES = SslNames()
URL_NAMES = SslNames("sslmode", "sslrootcert", "DATABASE_URL")


class SslMode(NamedTuple):
    """The chosen mode and where it came from."""

    mode: str
    source: str  # "explicit" or "default"


SslChoice = Found[SslMode]
"""The mode, with what is risky about it (warnings) and a combination no server can
satisfy (a problem: exit 3)."""


def choose_sslmode(
    kind: Kind,
    explicit: str | None,
    rootcert: str | None,
    *,
    system: bool = False,
    libpq_rootcert: str | None = None,
    socket: bool = False,
    names: SslNames = VARIABLE_NAMES,
) -> SslChoice:
    """An explicit mode wins; otherwise the kind's default from ``DEFAULTS``.

    ``system`` says ``SQL_SSL_ROOT_CERT=system``, which implies ``verify-full``
    (the OS roots vouch for names, not for a private CA).  ``libpq_rootcert`` is
    ``PGSSLROOTCERT``, which libpq uses when ``SQL_SSL_ROOT_CERT`` is unset.
    """
    assert explicit is None or explicit in SSL_MODES
    warnings: list[str] = []
    problem = None
    if explicit is not None:
        mode, source = explicit, "explicit"
        if mode in WEAK_MODES and not kind.in_cluster:
            warnings.append(
                f"{names.mode}={mode} for an {kind.value} host: the password and data may "
                "cross the network unencrypted and the server is not authenticated; "
                "use require or verify-full"
            )
        if system and mode != "verify-full":
            problem = (
                f"{names.mode}={mode} with {names.rootcert}=system: the system roots "
                "vouch for host names, so they need verify-full (libpq 16+ refuses any "
                f"other mode with them); set {names.mode}=verify-full or leave it out"
            )
    elif system:
        mode, source = "verify-full", "default"
    else:
        without, with_root = DEFAULTS[kind]
        mode, source = (with_root if rootcert else without), "default"

    if mode.startswith("verify-") and not rootcert:
        where = (
            f"PGSSLROOTCERT={libpq_rootcert}"
            if libpq_rootcert
            else "~/.postgresql/root.crt, which a container rarely has"
        )
        warnings.append(
            f"sslmode={mode} without {names.rootcert}: libpq reads the CA from {where}; "
            f"set {names.rootcert} to the CA bundle (or 'system')"
        )
    if rootcert and mode == "disable":
        warnings.append(f"{names.rootcert} is ignored because sslmode=disable")
    if socket and mode not in ("disable", "allow", "prefer"):
        warnings.append(
            f"sslmode={mode} has no effect over a Unix socket: libpq never uses TLS there, "
            "and nothing is verified"
        )
    problems = (Problem(names.variable, problem),) if problem else ()
    return Found(SslMode(mode, source), problems, tuple(warnings))
