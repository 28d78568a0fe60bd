"""The check against real PostgreSQL servers, through the real CLI.

Every scenario runs ``python -m preflight`` as a subprocess and asserts the exit
code, that every stderr line is a JSON event, and that the password appears
nowhere: not in stdout, stderr or the termination message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import cli
from tests.support.pg import (
    APP_DB,
    APP_PASSWORD,
    APP_USER,
    CNPG_HOST,
    RDS_HOST,
    LocalServer,
    ServerFactory,
    free_port,
)

TLS_ONLY_HBA = (
    "local all all trust",
    "hostssl all all 127.0.0.1/32 scram-sha-256",
)


def app_env(server: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    termination = tmp_path / "termination-log"
    variables = {
        "SQL_HOST": server.host,
        "SQL_PORT": str(server.port),
        "SQL_DATABASE": APP_DB,
        "SQL_USER": APP_USER,
        "SQL_PASSWORD": APP_PASSWORD,
        "PREFLIGHT_TERMINATION_LOG": str(termination),
    }
    return cli.base_env(**{**variables, **extra})


def checked(result: cli.Run, tmp_path: Path, code: int) -> cli.Run:
    """Common assertions: exit code, JSON events, no password, termination message."""
    termination = tmp_path / "termination-log"
    message = termination.read_text() if termination.exists() else ""
    cli.assert_no_secret(APP_PASSWORD, result.stdout, result.stderr, message)
    assert result.code == code, result.stderr
    if code == 0:
        assert result.names()[-1] in ("preflight.ready", "preflight.skipped")
        assert not message
    elif code in (130, 143):
        assert result.names()[-1] == "preflight.interrupted"
    else:
        failed = result.event("preflight.failed")
        assert failed["exit_code"] == code
        assert failed["hint"]
        assert "\n" not in message
        assert 0 < len(message.encode()) <= 4096
        assert message.startswith(failed["class"])
    return result


def run(env: dict[str, str], tmp_path: Path, code: int, *args: str, **kwargs: Any) -> cli.Run:
    return checked(cli.run(env, *args, **kwargs), tmp_path, code)


# --- the plain server: any backend ---


def test_ready_at_once(plain_server: Any, tmp_path: Path) -> None:
    """A running server: exit 0 on the first attempt, facts in preflight.ready."""
    result = run(app_env(plain_server, tmp_path), tmp_path, 0)
    ready = result.event("preflight.ready")
    assert ready["attempts"] == 1
    assert ready["server_version"].startswith("15")
    assert ready["in_recovery"] is False
    assert result.event("preflight.plan")["kind"] == "local"


def test_one_round_trip_after_the_login(make_server: ServerFactory, tmp_path: Path) -> None:
    """After its login the check sends the server one query string, the whole transaction
    with the time limit in it (log_statement=all), so a login holds a slot that briefly."""
    server = make_server("oneround", settings={"log_statement": "all"})
    server.logfile.write_text("")
    run(app_env(server, tmp_path, PREFLIGHT_TIMEOUT="30"), tmp_path, 0)
    log = server.log_text()
    assert log.count("statement: ") == 1, log
    sent = log.split("statement: ")[1]
    assert sent.startswith("BEGIN; SET LOCAL statement_timeout = ")
    assert "pg_is_in_recovery()" in sent
    assert sent.rstrip().endswith("COMMIT")


def test_check_subcommand_is_the_default(plain_server: Any, tmp_path: Path) -> None:
    """`preflight check` does what plain `preflight` does."""
    run(app_env(plain_server, tmp_path), tmp_path, 0, "check").event("preflight.ready")


def test_wrong_password_fails_fast(plain_server: Any, tmp_path: Path) -> None:
    """A wrong password exits 4 after one attempt: it cannot heal by waiting."""
    env = app_env(plain_server, tmp_path, SQL_PASSWORD="not-the-password-9")
    result = run(env, tmp_path, 4)
    failed = result.event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == ("auth_failed", 1)
    assert "password authentication failed" in failed["message"]
    assert "preflight.attempt_failed" not in result.names()
    assert "not-the-password-9" not in result.stderr


def test_missing_role_is_auth_failed(plain_server: Any, tmp_path: Path) -> None:
    """A role that does not exist is an authentication failure (exit 4)."""
    env = app_env(plain_server, tmp_path, SQL_USER="ghost")
    assert run(env, tmp_path, 4).event("preflight.failed")["class"] == "auth_failed"


def test_missing_database(plain_server: Any, tmp_path: Path) -> None:
    """A database that does not exist exits 5."""
    env = app_env(plain_server, tmp_path, SQL_DATABASE="nonexistent")
    failed = run(env, tmp_path, 5).event("preflight.failed")
    assert failed["reason"] == "database_missing"
    assert 'database "nonexistent" does not exist' in failed["message"]


def test_password_pasted_elsewhere_is_redacted(plain_server: Any, tmp_path: Path) -> None:
    """The password used by mistake as the database name shows nowhere, not even
    in the termination message that quotes the server's error."""
    env = app_env(plain_server, tmp_path, SQL_DATABASE=APP_PASSWORD)
    failed = run(env, tmp_path, 5).event("preflight.failed")
    assert 'database "[withheld]" does not exist' in failed["message"]


def _app_connection(server: Any, dbname: str = APP_DB) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=server.host,
        port=server.port,
        dbname=dbname,
        user=APP_USER,
        password=APP_PASSWORD,
        autocommit=True,
    )


def test_extensions_installed_pass(plain_server: Any, tmp_path: Path) -> None:
    """An installed extension passes and is listed as installed."""
    with _app_connection(plain_server) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    env = app_env(plain_server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="pg_trgm")
    extensions = run(env, tmp_path, 0).event("preflight.ready")["extensions"]
    assert extensions["installed"] == ["pg_trgm"]


def test_extension_available_but_not_installed_fails(plain_server: Any, tmp_path: Path) -> None:
    """Available but not installed is exit 7 (the app's migrations would fail on its types),
    with the hint for this kind (a local database: an init SQL file or a superuser)."""
    env = app_env(plain_server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="hstore")
    failed = run(env, tmp_path, 7).event("preflight.failed")
    assert failed["reason"] == "extension_missing"
    assert "available but not installed in the database: hstore" in failed["message"]
    assert "CREATE EXTENSION hstore" in failed["message"]


def test_create_extensions_opt_in(make_server: ServerFactory, tmp_path: Path) -> None:
    """PREFLIGHT_CREATE_EXTENSIONS creates an available trusted extension and logs it."""
    server = make_server("create-ext")
    env = app_env(
        server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="hstore", PREFLIGHT_CREATE_EXTENSIONS="1"
    )
    result = run(env, tmp_path, 0)
    assert result.event("preflight.extensions_created")["extensions"] == ["hstore"]
    assert result.event("preflight.ready")["extensions"]["created"] == ["hstore"]
    with _app_connection(server) as conn:
        assert conn.execute("SELECT 'a=>1'::hstore -> 'a'").fetchone() == ("1",)


def test_extensions_unavailable(plain_server: Any, tmp_path: Path) -> None:
    """An extension the server lacks exits 7, named."""
    env = app_env(plain_server, tmp_path, PREFLIGHT_REQUIRE_EXTENSIONS="no_such_ext_x")
    failed = run(env, tmp_path, 7).event("preflight.failed")
    assert "not available on the server: no_such_ext_x" in failed["message"]


# --- timing and retries ---


def closed_port_env(tmp_path: Path, timeout: str) -> dict[str, str]:
    """The app's settings pointing at a port where nothing listens."""
    return cli.base_env(
        SQL_HOST="127.0.0.1",
        SQL_PORT=str(free_port()),
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
        SQL_PASSWORD=APP_PASSWORD,
        PREFLIGHT_TIMEOUT=timeout,
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )


def test_nothing_listening_until_deadline(tmp_path: Path) -> None:
    """Nothing on the port: retries until the deadline, exit 10, reason refused."""
    env = closed_port_env(tmp_path, timeout="2")
    result = run(env, tmp_path, 10)
    failed = result.event("preflight.failed")
    assert failed["reason"] == "refused"
    assert 2 <= failed["elapsed"] < 3
    assert failed["attempts"] >= 4
    attempts = [e for e in result.events if e["event"] == "preflight.attempt_failed"]
    assert all(
        {"attempt", "reason", "message", "next_delay", "elapsed"} <= e.keys() for e in attempts
    )


def test_server_started_later(make_server: ServerFactory, tmp_path: Path) -> None:
    """The preflight waits for a server that starts a few seconds after it."""
    server = make_server("late", start=False)
    env = app_env(server, tmp_path)
    child = cli.spawn(cli.preflight_command(), env)
    child.wait_for_event("preflight.attempt_failed", count=2, reason="refused")
    server.start(wait=False)
    result = checked(child.finish(timeout=60), tmp_path, 0)
    assert result.event("preflight.ready")["attempts"] > 2
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert "refused" in reasons
    assert reasons <= {"refused", "starting_up"}


def test_too_many_clients_then_freed(make_server: ServerFactory, tmp_path: Path) -> None:
    """All slots taken: the preflight waits (too_many_clients) and succeeds once freed."""
    server = make_server(
        "full", settings={"max_connections": 2, "superuser_reserved_connections": 0}
    )
    holders = [
        psycopg.connect(
            host=server.host, port=server.port, dbname=APP_DB, user=APP_USER, password=APP_PASSWORD
        )
        for _ in range(2)
    ]
    child = cli.spawn(cli.preflight_command(), app_env(server, tmp_path))
    child.wait_for_event("preflight.attempt_failed", count=2, reason="too_many_clients")
    for conn in holders:
        conn.close()
    result = checked(child.finish(timeout=60), tmp_path, 0)
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert reasons == {"too_many_clients"}


def test_retry_auth_picks_up_rotated_password_file(plain_server: Any, tmp_path: Path) -> None:
    """With PREFLIGHT_RETRY_AUTH a password file that gets fixed is re-read."""
    secret = tmp_path / "password"
    secret.write_text("stale-password-1\n")
    env = app_env(
        plain_server,
        tmp_path,
        SQL_PASSWORD_FILE=str(secret),
        PREFLIGHT_RETRY_AUTH="true",
        PREFLIGHT_TIMEOUT="20",
    )
    del env["SQL_PASSWORD"]
    child = cli.spawn(cli.preflight_command(), env)
    child.wait_for_event("preflight.attempt_failed", reason="auth_failed")
    secret.write_text(APP_PASSWORD + "\n")
    result = checked(child.finish(timeout=60), tmp_path, 0)
    assert "auth_failed" in {e.get("reason") for e in result.events}


# --- TLS ---


def test_tls_only_server_with_disable(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """A TLS-only server (hostssl) reached with disable: pg_hba rejects it, exit 4, no retry,
    and the hint names the sslmode."""
    server = make_server("tlsonly", tls=server_tls, hba=TLS_ONLY_HBA)
    env = app_env(server, tmp_path, SQL_SSL_MODE="disable")
    failed = run(env, tmp_path, 4).event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == ("pg_hba_rejected", 1)
    assert "SQL_SSL_MODE=prefer" in failed["hint"]


def test_tls_only_server_with_the_in_cluster_default(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """A TLS-only server (a hardened CloudNativePG) with no SQL_SSL_MODE: prefer, TLS, exit 0."""
    server = make_server("tlsonly", tls=server_tls, hba=TLS_ONLY_HBA)
    result = run(app_env(server, tmp_path), tmp_path, 0)
    assert result.event("preflight.plan")["sslmode"] == "prefer"
    assert result.event("preflight.ready")["tls"] is True


def test_plain_server_with_the_in_cluster_default(plain_server: Any, tmp_path: Path) -> None:
    """A server without TLS and no SQL_SSL_MODE: prefer falls back to plain text, exit 0."""
    ready = run(app_env(plain_server, tmp_path), tmp_path, 0).event("preflight.ready")
    assert ready["tls"] is False


def test_pg_hba_rejection_without_tls_is_not_a_tls_failure(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """A server whose pg_hba has no rule for the user: exit 4 pg_hba_rejected, not exit 6."""
    server = make_server(
        "hba", hba=("local all all trust", "host all postgres 127.0.0.1/32 scram-sha-256")
    )
    failed = run(app_env(server, tmp_path), tmp_path, 4).event("preflight.failed")
    assert failed["reason"] == "pg_hba_rejected"
    assert "pg_hba.conf" in failed["hint"]


def test_tls_only_server_with_require(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """The same server with require: exit 0 over TLS."""
    server = make_server("tlsonly", tls=server_tls, hba=TLS_ONLY_HBA)
    ready = run(app_env(server, tmp_path, SQL_SSL_MODE="require"), tmp_path, 0).event(
        "preflight.ready"
    )
    assert ready["tls"] is True
    assert ready["tls_protocol"].startswith("TLSv1.")


def test_server_without_tls_reached_with_require(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """A server without TLS reached with require: exit 6."""
    server = make_server("notls")
    failed = run(app_env(server, tmp_path, SQL_SSL_MODE="require"), tmp_path, 6).event(
        "preflight.failed"
    )
    assert failed["reason"] == "tls_unavailable"


@pytest.fixture
def rds_like(make_server: ServerFactory, server_tls: tuple[str, str]) -> LocalServer:
    return make_server("rds", tls=server_tls, hba=TLS_ONLY_HBA)


def _rds_env(server: LocalServer, tmp_path: Path, host: str, rootcert: str) -> dict[str, str]:
    return app_env(server, tmp_path, SQL_HOST=host, SQL_SSL_ROOT_CERT=rootcert)


@pytest.mark.root
def test_verify_full_with_test_ca(rds_like: LocalServer, ca_file: Path, tmp_path: Path) -> None:
    """An RDS-style endpoint with its CA: verify-full by default, exit 0."""
    env = _rds_env(rds_like, tmp_path, RDS_HOST, str(ca_file))
    result = run(env, tmp_path, 0, hosts={RDS_HOST: "127.0.0.1"}, workdir=tmp_path)
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["sslmode"], plan["sslmode_source"]) == (
        "aws-rds",
        "verify-full",
        "default",
    )
    assert result.event("preflight.ready")["tls"] is True


@pytest.mark.root
def test_verify_full_with_wrong_ca(rds_like: LocalServer, tmp_path: Path) -> None:
    """A CA that did not sign the server certificate: exit 6, tls_untrusted."""
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    env = _rds_env(rds_like, tmp_path, RDS_HOST, str(other))
    failed = run(env, tmp_path, 6, hosts={RDS_HOST: "127.0.0.1"}, workdir=tmp_path).event(
        "preflight.failed"
    )
    assert failed["reason"] == "tls_untrusted"


@pytest.mark.root
def test_verify_full_with_wrong_host_name(
    rds_like: LocalServer, ca_file: Path, tmp_path: Path
) -> None:
    """A name the certificate does not list: exit 6, tls_hostname."""
    wrong = "other.c9akciq32.eu-west-1.rds.amazonaws.com"
    env = _rds_env(rds_like, tmp_path, wrong, str(ca_file))
    failed = run(env, tmp_path, 6, hosts={wrong: "127.0.0.1"}, workdir=tmp_path).event(
        "preflight.failed"
    )
    assert failed["reason"] == "tls_hostname"


def test_verify_full_with_missing_ca_file(rds_like: LocalServer, tmp_path: Path) -> None:
    """A CA bundle path that does not exist: exit 6, tls_ca_missing."""
    env = app_env(
        rds_like,
        tmp_path,
        SQL_SSL_MODE="verify-ca",
        SQL_SSL_ROOT_CERT=str(tmp_path / "missing.pem"),
    )
    failed = run(env, tmp_path, 6).event("preflight.failed")
    assert failed["reason"] == "tls_ca_missing"


# --- names that resolve only in a private mount namespace ---


@pytest.mark.root
def test_unresolvable_name(tmp_path: Path) -> None:
    """A name nothing resolves: retried until the deadline, exit 10, reason dns."""
    env = cli.base_env(
        SQL_HOST="balancer-postgres-rw",
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
        SQL_PASSWORD=APP_PASSWORD,
        PREFLIGHT_TIMEOUT="2",
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    failed = run(env, tmp_path, 10, hosts={}, workdir=tmp_path).event("preflight.failed")
    assert failed["reason"] == "dns"
    assert "same Kubernetes namespace" in failed["hint"]
    assert failed["attempts"] >= 3


@pytest.mark.root
def test_cloudnativepg_name_resolves(plain_server: Any, tmp_path: Path) -> None:
    """balancer-postgres-rw classified as CloudNativePG and reached: exit 0."""
    env = app_env(plain_server, tmp_path, SQL_HOST=CNPG_HOST)
    result = run(env, tmp_path, 0, hosts={CNPG_HOST: "127.0.0.1"}, workdir=tmp_path)
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["target_session_attrs"]) == ("cloudnativepg", "read-write")


@pytest.fixture
def standby(make_server: ServerFactory, template: Any) -> Iterator[LocalServer]:
    primary = make_server("primary")
    replica = LocalServer.standby_of(primary, template, "standby")
    replica.start()
    try:
        replica.wait_ready()
    except Exception:
        replica.destroy()
        raise
    yield replica
    replica.destroy()


@pytest.mark.root
def test_standby_behind_rw_is_read_only(standby: LocalServer, tmp_path: Path) -> None:
    """A standby behind a -rw name: retried as read_only, then exit 10."""
    env = app_env(standby, tmp_path, SQL_HOST=CNPG_HOST, PREFLIGHT_TIMEOUT="3")
    result = run(env, tmp_path, 10, hosts={CNPG_HOST: "127.0.0.1"}, workdir=tmp_path)
    assert result.event("preflight.failed")["reason"] == "read_only"
    assert result.event("preflight.failed")["attempts"] >= 3


@pytest.mark.root
def test_standby_behind_ro_is_ready(standby: LocalServer, tmp_path: Path) -> None:
    """The same standby behind a -ro name: exit 0, in recovery."""
    host = "balancer-postgres-ro"
    env = app_env(standby, tmp_path, SQL_HOST=host)
    result = run(env, tmp_path, 0, hosts={host: "127.0.0.1"}, workdir=tmp_path)
    assert result.event("preflight.ready")["in_recovery"] is True


# --- signals ---


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_waiting(signum: int, code: int, tmp_path: Path) -> None:
    """SIGTERM/SIGINT while waiting: stop within a second, log it, exit 143/130."""
    child = cli.spawn(cli.preflight_command(), closed_port_env(tmp_path, timeout="0"))
    child.wait_for_event("preflight.attempt_failed")
    sent = time.monotonic()
    child.send_signal(signum)
    child.proc.wait(timeout=10)
    took = time.monotonic() - sent
    result = checked(child.finish(), tmp_path, code)
    assert took < 1.0
    assert result.event("preflight.interrupted")["signal"] == signal.Signals(signum).name


@pytest.mark.root
def test_sigterm_as_pid_1(tmp_path: Path) -> None:
    """As PID 1 of a new PID namespace (as in a container) SIGTERM still stops it."""
    command = ["unshare", "--pid", "--fork", "--kill-child", "--", *cli.preflight_command()]
    proc = cli.spawn(command, closed_port_env(tmp_path, timeout="0"))
    proc.wait_for_event("preflight.attempt_failed")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    (child,) = children
    status = Path(f"/proc/{child}/status").read_text()
    (nspid,) = [line for line in status.splitlines() if line.startswith("NSpid:")]
    assert nspid.split()[-1] == "1"  # PID 1 inside its namespace
    sent = time.monotonic()
    os.kill(int(child), signal.SIGTERM)
    proc.proc.wait(timeout=10)
    took = time.monotonic() - sent
    checked(proc.finish(), tmp_path, 143)
    assert took < 1.0


# --- the process around the check ---


def test_sqlite_engine_exits_0(tmp_path: Path) -> None:
    """SQLite has no server: the check logs that and exits 0."""
    env = cli.base_env(SQL_ENGINE="django.db.backends.sqlite3")
    result = run(env, tmp_path, 0)
    assert result.event("preflight.skipped")["engine"] == "sqlite"


def test_invalid_config_exits_3(tmp_path: Path) -> None:
    """Invalid environment: every problem in preflight.failed, termination message, exit 3."""
    env = cli.base_env(
        SQL_PORT="54x2",
        SQL_PASSWORD=APP_PASSWORD,
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    failed = run(env, tmp_path, 3).event("preflight.failed")
    assert 'SQL_PORT: "54x2" is not a port number' in failed["problems"]
    assert "SQL_HOST: is not set" in " ".join(failed["problems"])


def test_bad_flag_exits_2(tmp_path: Path) -> None:
    """A bad flag is a usage error: exit 2, still one JSON line."""
    env = cli.base_env(PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"))
    result = run(env, tmp_path, 2, "--timeout", "soon")
    assert result.event("preflight.failed")["class"] == "usage"


def test_python_dash_m_and_console_script_agree(tmp_path: Path) -> None:
    """The console script and python -m preflight are the same program."""
    import shutil
    import sys

    script = shutil.which("preflight", path=str(Path(sys.executable).parent))
    assert script is not None
    env = cli.base_env(SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u")
    by_script = subprocess.run(
        [script, "explain"], env=env, capture_output=True, text=True, check=True
    )
    by_module = cli.run(env, "explain", json_stderr=False)
    assert json.loads(by_script.stdout) == json.loads(by_module.stdout)


def test_deadline_covers_a_query_stuck_on_a_lock(plain_server: Any, tmp_path: Path) -> None:
    """A lock held on pg_extension: the extension query ends at the deadline (statement
    timeout and cancel), the run within PREFLIGHT_TIMEOUT + 1 s, and the lock holder's
    server sees the query cancelled."""
    with plain_server.admin(APP_DB) as holder:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        env = app_env(
            plain_server, tmp_path, PREFLIGHT_TIMEOUT="3", PREFLIGHT_REQUIRE_EXTENSIONS="plpgsql"
        )
        result = run(env, tmp_path, 10)
        holder.execute("ROLLBACK")
    failed = result.event("preflight.failed")
    assert failed["reason"] == "timeout"
    assert result.seconds < 3 + 1 + 1  # the deadline, its second, and Python's start-up
    assert failed["elapsed"] <= 4
