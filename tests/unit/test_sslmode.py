"""SSL mode choice: explicit wins, defaults by kind, warnings for weak modes."""

from __future__ import annotations

import pytest

from preflight import Kind, choose_sslmode

IN_CLUSTER = [Kind.LOCAL, Kind.INTERNAL, Kind.CLOUDNATIVEPG]
OUTSIDE = [Kind.AWS_RDS, Kind.EXTERNAL]


@pytest.mark.parametrize(
    ("kind", "rootcert", "mode"),
    [(k, None, "disable") for k in IN_CLUSTER]
    + [(k, "/ca.crt", "verify-ca") for k in IN_CLUSTER]
    + [(k, None, "require") for k in OUTSIDE]
    + [(k, "/ca.crt", "verify-full") for k in OUTSIDE],
)
def test_default_by_kind(kind: Kind, rootcert: str | None, mode: str) -> None:
    """Without SQL_SSL_MODE the kind (and a root certificate) pick the mode."""
    choice = choose_sslmode(kind, None, rootcert)
    assert (choice.mode, choice.source) == (mode, "default")


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(
    "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
)
def test_explicit_always_wins(kind: Kind, mode: str) -> None:
    """An explicit SQL_SSL_MODE is used whatever the kind."""
    choice = choose_sslmode(kind, mode, "/ca.crt")
    assert (choice.mode, choice.source) == (mode, "explicit")


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
