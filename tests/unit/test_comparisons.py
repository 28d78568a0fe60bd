"""The comparison corpora behind the docs' difference tables, checked against the references
themselves: dj-database-url, and balancer's original settings block."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import comparisons
from tests.support.comparisons import REASONS, URLS


def test_the_corpus_has_at_least_40_urls() -> None:
    """At least 40 distinct URLs, every scheme this reads among them."""
    assert len(set(URLS)) == len(URLS) >= 40
    for scheme in ("postgres://", "postgresql://", "pgsql://", "postgis://", "sqlite://"):
        assert any(url.lower().startswith(scheme) for url in URLS)


@pytest.mark.parametrize("url", URLS)
def test_each_difference_has_a_reason_and_each_agreement_none(url: str) -> None:
    """Run against dj-database-url itself: a URL that differs has a reason in the table, one
    that agrees has none (so no reason outlives the difference it explained)."""
    found = comparisons.difference(*comparisons.dj_database_url_outcomes(url))
    assert (found is not None) == (url in REASONS), found


def test_the_always_rows_hold() -> None:
    """The differences said once for every URL are true of a plain URL: the plan's
    sslmode and gssencmode, a string PORT, and no Django defaults."""
    import dj_database_url

    from preflight.django import database_config

    url = "postgres://u:p@db/app?connect_timeout=10"
    ours = database_config({"DATABASE_URL": url})
    theirs = dict(dj_database_url.parse(url))
    assert ours["OPTIONS"] == {
        "sslmode": "prefer",
        "gssencmode": "disable",
        "connect_timeout": "10",
    }
    assert theirs["OPTIONS"] == {"connect_timeout": 10}
    assert (ours["PORT"], theirs["PORT"]) == ("5432", "")
    defaults = {"CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "DISABLE_SERVER_SIDE_CURSORS"}
    assert (defaults & ours.keys(), defaults <= theirs.keys()) == (set(), True)


@pytest.mark.parametrize(
    ("environment", "changed"),
    [
        ("compose (`config/env/dev.env`)", False),
        (comparisons.SANDBOX_ROW, True),
        ("`127.0.0.1`", True),
        ("`SQL_USER` unset", True),
        (comparisons.RDS_ROW, False),
    ],
)
def test_the_adoption_table_shows_what_the_issue_found(environment: str, changed: bool) -> None:
    """read-write on -rw, 127.0.0.1 from require to prefer, ImproperlyConfigured for an unset
    SQL_USER (the old block defaulted to "user"); compose and RDS unchanged."""
    environ = dict(comparisons.ENVIRONMENTS)[environment]
    before, after = comparisons.adoption_outcomes(environ)
    assert (comparisons.difference(before, after) is not None) == changed
    if environment == "`SQL_USER` unset":
        assert (before["USER"], after) == ("user", "ImproperlyConfigured")  # type: ignore[index]


def test_the_sandbox_row_is_the_sandboxs_own_configmap() -> None:
    """The row named after the sandbox has the SQL_* of its ConfigMap (k8s/balancer/sandbox,
    kept to cfp-sandbox-cluster's balancer.env by the k8s tests), not a made-up host."""
    env = Path(__file__).resolve().parents[2] / "k8s" / "balancer" / "sandbox" / "balancer.env"
    pairs = (line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
    configmap = {key: value for key, value in pairs if key.startswith("SQL_")}
    environ = dict(comparisons.ENVIRONMENTS)[comparisons.SANDBOX_ROW]
    assert {k: v for k, v in environ.items() if k != "SQL_PASSWORD"} == configmap
