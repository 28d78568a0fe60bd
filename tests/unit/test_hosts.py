"""Host classification: one row per rule of the docs' table, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight._hosts import Kind, classify_host

CASES = [
    # local
    ("localhost", Kind.LOCAL, None),
    ("LOCALHOST.", Kind.LOCAL, None),
    ("127.0.0.1", Kind.LOCAL, None),
    ("127.8.9.10", Kind.LOCAL, None),
    ("::1", Kind.LOCAL, None),
    ("[::1]", Kind.LOCAL, None),
    ("/var/run/postgresql", Kind.LOCAL, None),
    # aws-rds
    ("mydb.abc123xyz.us-east-1.rds.amazonaws.com", Kind.AWS_RDS, None),
    ("MyDB.abc123xyz.eu-west-1.RDS.amazonaws.com.", Kind.AWS_RDS, None),
    ("app.cluster-abc123.eu-central-1.rds.amazonaws.com", Kind.AWS_RDS, None),
    ("app.cluster-ro-abc123.eu-central-1.rds.amazonaws.com", Kind.AWS_RDS, None),
    ("app.cluster-custom-abc123.eu-central-1.rds.amazonaws.com", Kind.AWS_RDS, None),
    ("app-proxy.proxy-abc123.us-west-2.rds.amazonaws.com", Kind.AWS_RDS, None),
    ("mydb.abc123.rds.cn-north-1.amazonaws.com.cn", Kind.AWS_RDS, None),
    ("mydb.abc123.cn-north-1.rds.amazonaws.com.cn", Kind.AWS_RDS, None),
    # cloudnativepg
    ("balancer-postgres-rw", Kind.CLOUDNATIVEPG, "rw"),
    ("balancer-postgres-ro", Kind.CLOUDNATIVEPG, "ro"),
    ("balancer-postgres-r", Kind.CLOUDNATIVEPG, "r"),
    ("balancer-postgres-rw.prod", Kind.CLOUDNATIVEPG, "rw"),
    ("balancer-postgres-rw.prod.svc", Kind.CLOUDNATIVEPG, "rw"),
    ("balancer-postgres-rw.prod.svc.cluster.local", Kind.CLOUDNATIVEPG, "rw"),
    ("Balancer-Postgres-RO.prod.svc.cluster.local.", Kind.CLOUDNATIVEPG, "ro"),
    ("shared-cluster-rw.cloudnative-pg.svc.cluster.local", Kind.CLOUDNATIVEPG, "rw"),
    ("shared-cluster-pooler-rw.cloudnative-pg", Kind.CLOUDNATIVEPG, "rw"),
    # internal
    ("db", Kind.INTERNAL, None),
    ("postgres", Kind.INTERNAL, None),
    ("db.prod", Kind.INTERNAL, None),
    ("my_db", Kind.INTERNAL, None),
    ("postgres.prod.svc", Kind.INTERNAL, None),
    ("pg.prod.svc.cluster.local", Kind.INTERNAL, None),
    ("server", Kind.INTERNAL, None),  # ends in "r" but not "-r"
    # external
    ("db.example.com", Kind.EXTERNAL, None),
    ("balancer-postgres-rw.example.com", Kind.EXTERNAL, None),
    ("10.0.0.5", Kind.EXTERNAL, None),
    ("fe80::1", Kind.EXTERNAL, None),
    ("[2001:db8::5]", Kind.EXTERNAL, None),
    ("rds.amazonaws.com.evil.example", Kind.EXTERNAL, None),
    # .svc forms match as a suffix only
    ("db.svc.cluster.local.evil.com", Kind.EXTERNAL, None),
    ("balancer-rw.prod.svc.cluster.local.evil.com", Kind.EXTERNAL, None),
    ("balancer-rw.prod.svc.corp.example", Kind.EXTERNAL, None),
    ("postgres.prod.svc.corp.example", Kind.EXTERNAL, None),
]


@pytest.mark.parametrize(("host", "kind", "role"), CASES)
def test_classification_table(host: str, kind: Kind, role: str | None) -> None:
    """Each host lands in the kind (and role) the docs' table gives it."""
    result = classify_host(host)
    assert (result.kind, result.role) == (kind, role)
    assert result.evidence


@pytest.mark.parametrize(
    ("host", "pooler"),
    [
        ("shared-cluster-pooler-rw", True),
        ("balancer-pooler-ro.balancer.svc.cluster.local", True),
        ("shared-cluster-rw", False),
        ("pooler", False),  # no -rw/-ro/-r suffix: not a CloudNativePG service
    ],
)
def test_cloudnativepg_pooler_naming(host: str, pooler: bool) -> None:
    """A CloudNativePG Pooler's service (`<pooler>-rw`) is a pooler, not the primary."""
    found = classify_host(host)
    assert found.pooler is pooler
    if pooler:
        assert "PgBouncer" in found.evidence


def test_every_kind_has_a_case() -> None:
    """The table above exercises every kind."""
    assert {kind for _, kind, _ in CASES} == set(Kind)


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        ("app.cluster-ro-x.eu-central-1.rds.amazonaws.com", "Aurora reader endpoint"),
        ("p.proxy-x.us-west-2.rds.amazonaws.com", "RDS Proxy endpoint"),
        ("balancer-postgres-rw", "ends in -rw"),
        ("127.0.0.1", "loopback"),
    ],
)
def test_evidence_names_the_rule(host: str, phrase: str) -> None:
    """The evidence sentence says which rule matched."""
    assert phrase in classify_host(host).evidence


@given(st.text())
def test_any_string_classifies(host: str) -> None:
    """No string crashes classification; every result is one of the five kinds."""
    assert classify_host(host).kind in set(Kind)


def _short_form(host: str) -> bool:
    """``name.namespace`` or ``name.namespace.svc``: a form the pod's search list completes."""
    labels = host.rstrip(".").split(".")
    return len(labels) == 2 or (len(labels) == 3 and labels[2].lower() == "svc")


@given(st.sampled_from([h for h, _, _ in CASES]))
def test_case_and_trailing_dot_do_not_matter(host: str) -> None:
    """Names compare case-insensitively with a trailing dot ignored (but for the short
    forms a trailing dot makes fully qualified: see the next test)."""
    if host.startswith("/") or ":" in host or _short_form(host):
        return
    assert classify_host(host.rstrip(".").upper() + ".").kind == classify_host(host).kind


@pytest.mark.parametrize(
    "host", ["example.com.", "db.prod.", "balancer-postgres-rw.prod.", "pg-rw.prod.svc.", "x.y."]
)
def test_a_final_dot_makes_a_short_form_fully_qualified(host: str) -> None:
    """``example.com.`` is a fully qualified name (the resolver's search list does not
    complete it), so it is external, never an in-cluster ``name.namespace``."""
    assert classify_host(host).kind == Kind.EXTERNAL
    assert "final dot" in classify_host(host).evidence


# --- host facts: one place answers each question --------------------------------

from preflight._hosts import (  # noqa: E402
    has_trailing_dot,
    is_socket,
    libpq_host,
    needs_lookup,
)


@pytest.mark.parametrize(
    ("host", "socket", "lookup", "dot", "for_libpq"),
    [
        ("/var/run/postgresql", True, False, False, "/var/run/postgresql"),
        (" /tmp ", True, False, False, "/tmp"),
        ("/tmp/dir.", True, False, False, "/tmp/dir."),
        ("127.0.0.1", False, False, False, "127.0.0.1"),
        ("127.0.0.1.", False, True, True, "127.0.0.1"),
        ("[::1]", False, False, False, "::1"),
        ("::1", False, False, False, "::1"),
        ("db", False, True, False, "db"),
        ("db.example.com.", False, True, True, "db.example.com."),
        (".", False, True, False, "."),
    ],
)
def test_host_facts(host: str, socket: bool, lookup: bool, dot: bool, for_libpq: str) -> None:
    """Socket path, DNS need, trailing dot and libpq's form, each from one function."""
    assert (is_socket(host), needs_lookup(host), has_trailing_dot(host)) == (socket, lookup, dot)
    assert libpq_host(host) == for_libpq


@pytest.mark.parametrize(
    ("host", "domain", "kind"),
    [
        ("balancer-postgres-rw.prod.svc.corp.example", "corp.example", Kind.CLOUDNATIVEPG),
        ("postgres.prod.svc.corp.example", "corp.example", Kind.INTERNAL),
        ("balancer-postgres-rw.prod.svc.cluster.local", "corp.example", Kind.EXTERNAL),
        ("balancer-rw.prod.svc.corp.example.evil.com", "corp.example", Kind.EXTERNAL),
        ("balancer-rw.prod.svc.CORP.example.", "Corp.Example.", Kind.CLOUDNATIVEPG),
    ],
)
def test_custom_cluster_domain_matches_by_suffix(host: str, domain: str, kind: Kind) -> None:
    """A custom cluster domain replaces cluster.local, and still only as the whole suffix."""
    assert classify_host(host, domain).kind is kind


LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(
    head=st.lists(LABEL, min_size=2, max_size=2),
    third=st.one_of(st.just("svc"), LABEL),
    rest=st.one_of(
        st.sampled_from([[], ["cluster", "local"], ["corp", "example"], ["k8s"]]),
        st.lists(LABEL, max_size=3),
    ),
    domain=st.sampled_from(["cluster.local", "corp.example", "k8s"]),
    dot=st.booleans(),
)
def test_only_the_svc_form_under_the_domain_is_in_cluster(
    head: list[str], third: str, rest: list[str], domain: str, dot: bool
) -> None:
    """A name of three labels or more is in-cluster only as name.namespace.svc[.<domain>]
    (by suffix; with a final dot only the full form); anything else is external (or RDS),
    whatever the first label says."""
    host = ".".join([*head, third, *rest]) + ("." if dot else "")
    kind = classify_host(host, domain).kind
    tail = ".".join(rest)
    if third == "svc" and (tail == domain or (tail == "" and not dot)):
        assert kind in (Kind.CLOUDNATIVEPG, Kind.INTERNAL)
    else:
        assert kind in (Kind.EXTERNAL, Kind.AWS_RDS)
