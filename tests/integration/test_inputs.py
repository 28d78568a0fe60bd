"""Real inputs against real servers: DATABASE_URL client certificates and search_path,
Kubernetes service links, and a pod's custom cluster domain."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.integration.test_check import app_env, run
from tests.support import cli, djangodb
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, ServerFactory

KEY_PASSWORD = "Kx7-client-key'pass@word"
CERT_HBA = ("local all all trust", "hostssl all all 127.0.0.1/32 cert")


def _app_answers(config: dict[str, Any], query: str) -> Any:
    wrapper = djangodb.postgresql(config)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchone()[0]
    finally:
        wrapper.close()


def _client_certificate(ca: Any, directory: Path) -> tuple[Path, Path]:
    """A client certificate for the app role, and its key encrypted with KEY_PASSWORD."""
    from cryptography.hazmat.primitives import serialization

    leaf = ca.issue_cert("balancer-client", common_name=APP_USER)
    cert, key = directory / "client.crt", directory / "client.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    os.chmod(key, 0o600)
    return cert, key


def test_client_certificate_login_through_database_url(
    make_server: ServerFactory,
    server_tls: tuple[str, str],
    ca: Any,
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """A server that takes only client certificates: the URL's sslcert, sslkey and
    sslpassword get the check to 0 and the app connected, and the key's password shows
    nowhere."""
    from urllib.parse import quote

    from preflight.django import database_config

    server = make_server(
        "certauth", tls=server_tls, hba=CERT_HBA, settings={"ssl_ca_file": f"'{ca_file}'"}
    )
    cert, key = _client_certificate(ca, tmp_path)
    url = (
        f"postgres://{APP_USER}@127.0.0.1:{server.port}/{APP_DB}?sslmode=verify-full"
        f"&sslrootcert={ca_file}&sslcert={cert}&sslkey={key}"
        f"&sslpassword={quote(KEY_PASSWORD, safe='')}"
    )
    env = cli.base_env(DATABASE_URL=url, PREFLIGHT_TERMINATION_LOG=str(tmp_path / "t"))
    result = run(env, tmp_path, 0)
    assert result.event("preflight.ready")["tls"] is True
    assert result.event("preflight.plan")["parameters"]["sslpassword"] == "set"
    cli.assert_no_secret(KEY_PASSWORD, result.stdout, result.stderr)
    config = database_config({"DATABASE_URL": url})
    assert _app_answers(config, "SELECT current_user") == APP_USER


@pytest.mark.parametrize(
    "query",
    ["options=-c%20search_path%3Dmyschema", "currentSchema=myschema"],
)
def test_the_apps_search_path_is_honoured(
    make_server: ServerFactory, tmp_path: Path, query: str
) -> None:
    """options (or dj-database-url's currentSchema) reaches the app's connection: its
    tables land in myschema, not public; the check logs in with the same options."""
    from preflight.django import database_config

    server = make_server("schema")
    with server.admin(APP_DB) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA myschema AUTHORIZATION {}").format(sql.Identifier(APP_USER))
        )
    url = f"postgres://{APP_USER}:{_quoted(APP_PASSWORD)}@127.0.0.1:{server.port}/{APP_DB}?{query}"
    config = database_config({"DATABASE_URL": url})
    assert _app_answers(config, "SHOW search_path") == "myschema"
    wrapper = djangodb.postgresql(config)
    with wrapper.cursor() as cursor:
        cursor.execute("CREATE TABLE app_table (x int)")
    wrapper.close()
    with server.admin(APP_DB) as conn:
        row = conn.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'app_table'")
        assert row.fetchone() == ("myschema",)
    env = cli.base_env(DATABASE_URL=url, PREFLIGHT_TERMINATION_LOG=str(tmp_path / "t"))
    assert run(env, tmp_path, 0).event("preflight.plan")["parameters"]["options"] == (
        "-c search_path=myschema"
    )


def test_the_apps_pool_connects_through_djangos_own_pool(
    make_server: ServerFactory,
) -> None:
    """database_config(pool=..., conn_health_checks=True) is taken by Django's real pool
    (psycopg_pool), which logs the app in; Django's own checks raise nothing."""
    from preflight.django import database_config

    server = make_server("pool")
    url = f"postgres://{APP_USER}:{_quoted(APP_PASSWORD)}@127.0.0.1:{server.port}/{APP_DB}"
    config = database_config(
        {"DATABASE_URL": url}, pool={"min_size": 1, "max_size": 2}, conn_health_checks=True
    )
    wrapper = djangodb.postgresql(config)
    try:
        assert wrapper.pool is not None
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == APP_USER
    finally:
        wrapper.close()
        wrapper.close_pool()


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


SERVICE_LINK = {
    "SQL_SERVICE_HOST": "10.96.0.12",
    "SQL_SERVICE_PORT": "5432",
    "SQL_PORT": "tcp://10.96.0.12:5432",
    "SQL_PORT_5432_TCP": "tcp://10.96.0.12:5432",
    "SQL_PORT_5432_TCP_PROTO": "tcp",
    "SQL_PORT_5432_TCP_PORT": "5432",
    "SQL_PORT_5432_TCP_ADDR": "10.96.0.12",
}


def test_a_service_link_environment(plain_server: Any, tmp_path: Path) -> None:
    """A pod beside a Service named sql: exit 3 with one problem that names service links
    and the fix; with SQL_PORT set explicitly, ready, and one warning instead of six."""
    env = {**app_env(plain_server, tmp_path), **SERVICE_LINK}
    failed = run(env, tmp_path, 3).event("preflight.failed")
    (problem,) = failed["problems"]
    assert problem.startswith("SQL_PORT: ")
    assert "Kubernetes service link" in problem
    assert "enableServiceLinks: false" in problem
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**app_env(plain_server, ready), **SERVICE_LINK, "SQL_PORT": str(plain_server.port)}
    result = run(env, ready, 0)
    warnings = [e["message"] for e in result.events if e["event"] == "preflight.config_warning"]
    assert len(warnings) == 1
    assert "service link" in warnings[0]


RESOLV = "nameserver 127.0.0.1\nsearch prod.svc.corp.example svc.corp.example corp.example\n"


def _in_pod(tmp_path: Path, command: list[str], env: dict[str, str]) -> str:
    """Run ``command`` in a private mount namespace whose /etc/resolv.conf is a pod's in a
    cluster with the domain corp.example (the machine's own file is never touched)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(RESOLV)
    wrapped = cli.unshare(f"mount --bind '{resolv}' /etc/resolv.conf && exec \"$@\"", command)
    done = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


@pytest.mark.root
@pytest.mark.parametrize(
    ("host", "kind", "sslmode"),
    [
        ("balancer-postgres-rw.prod.svc.corp.example", "cloudnativepg", "prefer"),
        ("balancer-postgres-rw.prod.svc.cluster.local", "external", "require"),
        ("balancer-postgres-rw.prod.svc.corp.example.evil.com", "external", "require"),
        ("Balancer-Postgres-RW.prod.svc.corp.example.", "cloudnativepg", "prefer"),
        ("balancer-postgres-rw.prod.", "external", "require"),  # fully qualified as written
    ],
)
def test_a_pods_custom_cluster_domain(tmp_path: Path, host: str, kind: str, sslmode: str) -> None:
    """In a pod whose resolver searches svc.corp.example, name.ns.svc.corp.example is in the
    cluster (by suffix only) for the check and the app alike."""
    env = cli.base_env(
        SQL_HOST=host,
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
        SQL_PASSWORD=APP_PASSWORD,
        KUBERNETES_SERVICE_HOST="10.96.0.1",
    )
    plan = json.loads(_in_pod(tmp_path, cli.preflight_command("explain"), env))
    assert (plan["kind"], plan["sslmode"]) == (kind, sslmode)
    app = _in_pod(
        tmp_path,
        [
            cli.preflight_command()[0],
            "-c",
            "from preflight.django import database_config; "
            "print(database_config()['OPTIONS']['sslmode'])",
        ],
        env,
    )
    assert app.strip() == sslmode


def test_outside_a_pod_the_resolver_is_not_read(tmp_path: Path) -> None:
    """Without KUBERNETES_SERVICE_HOST the machine's resolv.conf says nothing: cluster.local."""
    env = cli.base_env(
        SQL_HOST="balancer-postgres-rw.prod.svc.cluster.local",
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
    )
    result = cli.run(env, "explain", json_stderr=False)
    assert json.loads(result.stdout)["kind"] == "cloudnativepg"


def _cursor_survives_another_transaction(config: dict[str, Any], pooler: Any) -> str:
    """Read rows in chunks as Django's ``QuerySet.iterator()`` does (a server-side cursor,
    declared WITH HOLD, unless ``DISABLE_SERVER_SIDE_CURSORS``), while another client takes
    the server connection the cursor was declared on: "ok" or the error."""
    import contextlib

    import psycopg
    from django.db import DatabaseError

    wrapper = djangodb.postgresql(config)
    other = psycopg.connect(
        host=pooler.host,
        port=pooler.port,
        dbname=APP_DB,
        user=APP_USER,
        password=APP_PASSWORD,
        sslmode="disable",
    )
    wrapper.ensure_connection()
    chunked = not config.get("DISABLE_SERVER_SIDE_CURSORS")
    cursor = wrapper.chunked_cursor() if chunked else wrapper.cursor()
    try:
        cursor.execute("SELECT generate_series(1, 100)")
        other.execute("SELECT 1")  # a transaction left open: it holds the server connection
        try:
            rows = cursor.fetchmany(10)
        except DatabaseError as exc:
            return type(exc).__name__ + ": " + str(exc).splitlines()[0]
        return "ok" if len(rows) == 10 else f"{len(rows)} rows"
    finally:
        other.close()
        wrapper.close()  # first: a cursor of a closed connection closes without a round trip
        with contextlib.suppress(DatabaseError, psycopg.Error):
            cursor.close()


def test_why_a_pooler_gets_no_server_side_cursors(
    make_server: ServerFactory, workspace: Path
) -> None:
    """Behind a real PgBouncer in transaction mode, Django's server-side cursor is lost when
    its next fetch lands on another server connection; with DISABLE_SERVER_SIDE_CURSORS (what
    database_config() sets for a pooler host) the same fetch works."""
    from preflight.django import database_config
    from tests.support.pgbouncer import PgBouncer, pgbouncer_binary

    if pgbouncer_binary() is None:
        from tests.support.ci import unavailable

        unavailable("pgbouncer (Debian package pgbouncer) is not installed")
    server = make_server("txpool")
    pooler = PgBouncer(workspace, server.port, pool_mode="transaction")
    pooler.start()
    try:
        url = (
            f"postgres://{APP_USER}:{_quoted(APP_PASSWORD)}@127.0.0.1:{pooler.port}/{APP_DB}"
            "?sslmode=disable"
        )
        kept = database_config({"DATABASE_URL": url}, disable_server_side_cursors=False)
        lost = _cursor_survives_another_transaction(kept, pooler)
        assert "does not exist" in lost, lost
        safe = database_config({"DATABASE_URL": url}, disable_server_side_cursors=True)
        assert _cursor_survives_another_transaction(safe, pooler) == "ok"
    finally:
        pooler.destroy()
