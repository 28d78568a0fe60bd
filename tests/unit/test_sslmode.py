"""SSL mode choice: explicit wins, defaults by kind, `system` implies verify-full, warnings."""

from __future__ import annotations

import pytest

from preflight._hosts import Kind
from preflight._sslmode import choose_sslmode

IN_CLUSTER = [Kind.LOCAL, Kind.INTERNAL, Kind.CLOUDNATIVEPG]
OUTSIDE = [Kind.AWS_RDS, Kind.EXTERNAL]


@pytest.mark.parametrize(
    ("kind", "rootcert", "mode"),
    [(k, None, "prefer") for k in IN_CLUSTER]
    + [(k, "/ca.crt", "verify-ca") for k in IN_CLUSTER]
    + [(k, None, "require") for k in OUTSIDE]
    + [(k, "/ca.crt", "verify-full") for k in OUTSIDE],
)
def test_default_by_kind(kind: Kind, rootcert: str | None, mode: str) -> None:
    """Without SQL_SSL_MODE the kind (and a root certificate) pick the mode."""
    choice = choose_sslmode(kind, None, rootcert)
    assert (choice.value.mode, choice.value.source) == (mode, "default")


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(
    "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
)
def test_explicit_always_wins(kind: Kind, mode: str) -> None:
    """An explicit SQL_SSL_MODE is used whatever the kind."""
    choice = choose_sslmode(kind, mode, "/ca.crt")
    assert (choice.value.mode, choice.value.source) == (mode, "explicit")


@pytest.mark.parametrize("kind", OUTSIDE)
@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_weak_mode_outside_warns(kind: Kind, mode: str) -> None:
    """A weak explicit mode for an RDS or external host warns and names the risk."""
    (warning,) = choose_sslmode(kind, mode, None).warnings
    assert kind.value in warning
    assert "unencrypted" in warning


@pytest.mark.parametrize("kind", IN_CLUSTER)
def test_weak_mode_in_cluster_is_quiet(kind: Kind) -> None:
    """disable inside the cluster is the normal case, no warning."""
    assert choose_sslmode(kind, "disable", None).warnings == ()


def test_verify_without_root_cert_warns() -> None:
    """verify-full with no CA bundle would look in ~/.postgresql: say so."""
    (warning,) = choose_sslmode(Kind.AWS_RDS, "verify-full", None).warnings
    assert "SQL_SSL_ROOT_CERT" in warning
    assert "~/.postgresql/root.crt" in warning


def test_verify_without_root_cert_names_pgsslrootcert() -> None:
    """When PGSSLROOTCERT is what libpq will read, the warning names it, not ~/.postgresql."""
    (warning,) = choose_sslmode(
        Kind.AWS_RDS, "verify-full", None, libpq_rootcert="/etc/ca.pem"
    ).warnings
    assert "PGSSLROOTCERT=/etc/ca.pem" in warning
    assert "~/.postgresql" not in warning


@pytest.mark.parametrize("kind", list(Kind))
def test_system_implies_verify_full(kind: Kind) -> None:
    """SQL_SSL_ROOT_CERT=system with no explicit mode is verify-full for every kind."""
    choice = choose_sslmode(kind, None, "/etc/ssl/certs/ca-certificates.crt", system=True)
    assert (choice.value.mode, choice.problems) == ("verify-full", ())


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_system_with_a_weaker_explicit_mode_is_a_problem(mode: str) -> None:
    """An explicit mode weaker than verify-full with system is a configuration error."""
    choice = choose_sslmode(Kind.AWS_RDS, mode, "/bundle.pem", system=True)
    (problem,) = choice.problems
    assert problem.variable == "SQL_SSL_MODE"
    assert f"SQL_SSL_MODE={mode}" in problem.message


def test_system_with_verify_full_is_fine() -> None:
    """The one mode that suits system roots."""
    assert choose_sslmode(Kind.AWS_RDS, "verify-full", "/b.pem", system=True).problems == ()


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_unix_socket_with_tls_mode_warns(mode: str) -> None:
    """Over a Unix socket libpq never uses TLS: a mode that asks for it gets a warning."""
    warnings = choose_sslmode(Kind.LOCAL, mode, "/ca.pem", socket=True).warnings
    assert any("Unix socket" in w for w in warnings)


def test_unix_socket_with_prefer_is_quiet() -> None:
    """prefer over a socket asks for nothing it cannot have."""
    assert choose_sslmode(Kind.LOCAL, None, None, socket=True).warnings == ()
