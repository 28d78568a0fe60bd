"""SSL mode choice: which libpq ``sslmode`` a kind of database needs.

Pure logic, no I/O.  ``DEFAULTS`` is what the README's SSL table is checked
against.
"""

from __future__ import annotations

from typing import NamedTuple

from ._hosts import Kind

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
WEAK_MODES = frozenset({"disable", "allow", "prefer"})

# kind -> (default without SQL_SSL_ROOT_CERT, default with it)
DEFAULTS: dict[Kind, tuple[str, str]] = {
    Kind.LOCAL: ("disable", "verify-ca"),
    Kind.INTERNAL: ("disable", "verify-ca"),
    Kind.CLOUDNATIVEPG: ("disable", "verify-ca"),
    Kind.AWS_RDS: ("require", "verify-full"),
    Kind.EXTERNAL: ("require", "verify-full"),
}


class SslChoice(NamedTuple):
    """The chosen mode, where it came from, and what is risky about it."""

    mode: str
    source: str  # "explicit" or "default"
    warnings: tuple[str, ...] = ()


def choose_sslmode(kind: Kind, explicit: str | None, rootcert: str | None) -> SslChoice:
    """An explicit mode always wins; otherwise the kind's default from ``DEFAULTS``."""
    warnings: list[str] = []
    if explicit is not None:
        mode, source = explicit, "explicit"
        if mode in WEAK_MODES and not kind.in_cluster:
            warnings.append(
                f"SQL_SSL_MODE={mode} for an {kind.value} host: the password and data may "
                "cross the network unencrypted and the server is not authenticated; "
                "use require or verify-full"
            )
    else:
        without, with_root = DEFAULTS[kind]
        mode, source = (with_root if rootcert else without), "default"

    if mode.startswith("verify-") and not rootcert:
        warnings.append(
            f"sslmode={mode} without SQL_SSL_ROOT_CERT: libpq looks for "
            "~/.postgresql/root.crt; set SQL_SSL_ROOT_CERT to the CA bundle (or 'system')"
        )
    if rootcert and mode == "disable":
        warnings.append("SQL_SSL_ROOT_CERT is ignored because sslmode=disable")
    return SslChoice(mode, source, tuple(warnings))
