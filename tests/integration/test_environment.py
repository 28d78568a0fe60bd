"""libpq's own environment, hostile inputs and the process around the check, against real servers.

Each scenario runs the real CLI as a subprocess; `checked` asserts the exit code,
JSON events, no password anywhere and a sane termination message.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_check import TLS_ONLY_HBA, app_env, checked, run
from tests.support import cli
from tests.support.pg import APP_DB, APP_PASSWORD, RDS_HOST, ServerFactory

# --- failures no waiting can fix end at once -------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "code", "reason"),
    [
        ("PGSERVICE", "nosuch", 3, "libpq_option"),
        ("PGOPTIONS", "-c nosuch_param=1", 3, "libpq_option"),
        ("PGTARGETSESSIONATTRS", "standby", 3, "libpq_option"),
        ("PGREQUIREAUTH", "md5", 4, "auth_method"),
        ("PGSSLNEGOTIATION", "direct", 3, "libpq_option"),
        ("PGSSLMINPROTOCOLVERSION", "bogus", 3, "libpq_option"),
        ("PGSSLMAXPROTOCOLVERSION", "TLSv1.9", 3, "libpq_option"),
        ("PGOPTIONS", "-c", 3, "libpq_option"),
        ("PGHOSTADDR", "notanip", 3, "libpq_option"),
    ],
)
def test_libpq_variables_that_cannot_heal_fail_at_once(
    plain_server: Any, tmp_path: Path, variable: str, value: str, code: int, reason: str
) -> None:
    """A PG* variable no server can satisfy fails on the first attempt with its class."""
    env = app_env(plain_server, tmp_path, PREFLIGHT_TIMEOUT="20", **{variable: value})
    result = run(env, tmp_path, code)
    failed = result.event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == (reason, 1)
    assert result.seconds < 10
    plan = result.event("preflight.plan")
    assert variable in plan["libpq_env"]


def test_pgoptions_message_is_said_once(plain_server: Any, tmp_path: Path) -> None:
    """The server's complaint about PGOPTIONS appears once in the message."""
    env = app_env(plain_server, tmp_path, PGOPTIONS="-c nosuch_param=1")
    failed = run(env, tmp_path, 3).event("preflight.failed")
    assert failed["message"].count("nosuch_param") == 1


def test_direct_tls_negotiation_against_a_pg15_server(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """PGSSLNEGOTIATION=direct with require: a server before 17 hangs up; exit 3, not retried."""
    server = make_server("direct", tls=server_tls, hba=TLS_ONLY_HBA)
    env = app_env(
        server, tmp_path, PGSSLNEGOTIATION="direct", SQL_SSL_MODE="require", PREFLIGHT_TIMEOUT="20"
    )
    failed = run(env, tmp_path, 3).event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == ("libpq_option", 1)
    assert "PGSSLNEGOTIATION=direct" in failed["message"]


def test_database_that_allows_no_connections(make_server: ServerFactory, tmp_path: Path) -> None:
    """ALLOW_CONNECTIONS false: exit 5 database_closed on the first attempt."""
    server = make_server("closed-db")
    with server.admin() as conn:
        conn.execute(f"ALTER DATABASE {APP_DB} ALLOW_CONNECTIONS false")
    env = app_env(server, tmp_path, PREFLIGHT_TIMEOUT="20")
    failed = run(env, tmp_path, 5).event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == ("database_closed", 1)
    assert "ALLOW_CONNECTIONS" in failed["hint"]


# --- libpq's environment is honoured as the app's libpq honours it, and said ---------------


@pytest.mark.root
def test_pghostaddr_is_honoured_and_listed(plain_server: Any, tmp_path: Path) -> None:
    """PGHOSTADDR sends libpq (the app's and the check's) to that address, with a warning."""
    env = app_env(plain_server, tmp_path, SQL_HOST="db.example.com", PGHOSTADDR=plain_server.host)
    env["SQL_SSL_MODE"] = "prefer"
    result = run(env, tmp_path, 0, hosts={}, workdir=tmp_path)
    plan = result.event("preflight.plan")
    assert plan["libpq_env"]["PGHOSTADDR"] == plain_server.host
    assert any(w.startswith("PGHOSTADDR is set") for w in plan["warnings"])


def test_pgpassword_is_used_when_no_password_is_set(plain_server: Any, tmp_path: Path) -> None:
    """With no SQL_PASSWORD libpq takes PGPASSWORD; the plan says so, the value never shows."""
    env = app_env(plain_server, tmp_path, PGPASSWORD=APP_PASSWORD)
    del env["SQL_PASSWORD"]
    result = run(env, tmp_path, 0)
    plan = result.event("preflight.plan")
    assert (plan["password"], plan["libpq_env"]["PGPASSWORD"]) == ("unset", "set")


# --- inputs ----------------------------------------------------------------------------


def test_bracketed_ipv6_connects(make_server: ServerFactory, tmp_path: Path) -> None:
    """SQL_HOST=[::1] reaches a server on ::1 (libpq gets the address without brackets)."""
    server = make_server("v6", settings={"listen_addresses": "'127.0.0.1,::1'"})
    env = app_env(server, tmp_path, SQL_HOST="[::1]")
    result = run(env, tmp_path, 0)
    assert result.event("preflight.plan")["host"] == "::1"


def test_an_unknown_flag_is_named(tmp_path: Path) -> None:
    """`--timout 5` names the flag and the close one, exit 2, termination message written."""
    termination = tmp_path / "flag-termination"
    env = cli.base_env(SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u")
    result = cli.run(env, "--timout", "5", "--termination-log", str(termination))
    assert result.code == 2
    failed = result.event("preflight.failed")
    assert "unrecognized flag --timout (did you mean --timeout?)" in failed["message"]
    assert termination.read_text().startswith("usage (usage): unrecognized flag --timout")


def test_version(tmp_path: Path) -> None:
    """`preflight --version` prints the installed version."""
    result = cli.run(cli.base_env(), "--version", json_stderr=False)
    assert result.code == 0
    assert result.stdout.startswith("preflight 0.")


def test_non_utf8_bytes_give_exit_3_not_a_traceback(tmp_path: Path) -> None:
    """A non-UTF-8 byte in several variables: exit 3 naming each, no traceback."""
    env: dict[bytes, bytes] = {k.encode(): v.encode() for k, v in cli.base_env().items()}
    env |= {
        b"SQL_HOST": b"db\xff",
        b"SQL_DATABASE": b"d\xfe",
        b"SQL_USER": b"u",
        b"SQL_PASSWORD": b"pw\xff",
        b"PREFLIGHT_TERMINATION_LOG": str(tmp_path / "t").encode(),
    }
    done = subprocess.run(
        cli.preflight_command(), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    failed = cli.parse_events(done.stderr)[-1]
    assert {"SQL_HOST", "SQL_DATABASE", "SQL_PASSWORD"} <= {
        p.split(":")[0] for p in failed["problems"]
    }


# --- output never changes the outcome ----------------------------------------------------


def _raw_run(env: dict[str, str], *args: str, **kwargs: Any) -> int:
    return subprocess.run(
        cli.preflight_command(*args), env=env, timeout=60, check=False, **kwargs
    ).returncode


def test_ready_with_stderr_closed(plain_server: Any, tmp_path: Path) -> None:
    """A ready check exits 0 even when stderr is closed."""
    env = app_env(plain_server, tmp_path)
    code = _raw_run(env, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.close(2))
    assert code == 0


def test_ready_with_stderr_on_a_full_disk(plain_server: Any, tmp_path: Path) -> None:
    """A ready check exits 0 when every log write fails with ENOSPC (/dev/full)."""
    with open("/dev/full", "w") as full:
        assert _raw_run(app_env(plain_server, tmp_path), stderr=full) == 0


def test_failure_code_survives_a_broken_stderr(tmp_path: Path) -> None:
    """A config error is still exit 3 when stderr cannot be written."""
    env = cli.base_env(SQL_PORT="x", PREFLIGHT_TERMINATION_LOG=str(tmp_path / "t"))
    with open("/dev/full", "w") as full:
        assert _raw_run(env, stderr=full) == 3
    assert (tmp_path / "t").read_text().startswith("config_invalid")


def test_explain_with_stdout_closed_is_not_success(tmp_path: Path) -> None:
    """`explain >&-` cannot print its document: exit 2 (output_failed), not 0."""
    env = cli.base_env(SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u")
    done = subprocess.run(
        cli.preflight_command("explain"),
        env=env,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 2
    assert cli.parse_events(done.stderr)[-1]["reason"] == "output_failed"


def test_termination_log_symlink_is_not_followed(tmp_path: Path) -> None:
    """A link at the termination-log path is refused with a warning; its target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "termination-log"
    link.symlink_to(victim)
    env = cli.base_env(SQL_PORT="x", PREFLIGHT_TERMINATION_LOG=str(link))
    result = cli.run(env)
    assert result.code == 3
    assert victim.read_text() == "precious"
    assert result.event("preflight.termination_log_unwritable")["path"] == str(link)


def test_unwritable_termination_log_is_reported(tmp_path: Path) -> None:
    """A termination-log path that cannot be written gives one warning event."""
    env = cli.base_env(SQL_PORT="x", PREFLIGHT_TERMINATION_LOG=str(tmp_path / "no" / "such"))
    result = cli.run(env)
    assert result.code == 3
    assert result.names().count("preflight.termination_log_unwritable") == 1


def test_check_without_the_extra_exits_2(tmp_path: Path) -> None:
    """Without structlog/tenacity/psycopg (no [check] extra) the CLI exits 2 naming the extra."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "psycopg.py").write_text("raise ImportError('blocked for the test')\n")
    (blocker / "sitecustomize.py").write_text(
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "def find_spec(name, *a, **k):\n"
        "    return None if name == 'psycopg' else real(name, *a, **k)\n"
        "importlib.util.find_spec = find_spec\n"
    )
    env = cli.base_env(PYTHONPATH=str(blocker), SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u")
    result = cli.run(env)
    assert result.code == 2
    failed = result.events[-1]
    assert failed["reason"] == "check_extra_missing"
    assert "django-db-preflight[check]" in failed["hint"]
    version = cli.run(env, "--version", json_stderr=False)
    assert (version.code, version.stdout.split()[0]) == (0, "preflight")


# --- the OS trust store through SQL_SSL_ROOT_CERT=system ---------------------------------


@pytest.mark.root
def test_system_trust_store(
    make_server: ServerFactory, server_tls: tuple[str, str], ca_file: Path, tmp_path: Path
) -> None:
    """SQL_SSL_ROOT_CERT=system finds a CA placed in the OS bundle (a private mount over it):
    verify-full, exit 0, with psycopg-binary's own OpenSSL."""
    server = make_server("system-ca", tls=server_tls, hba=TLS_ONLY_HBA)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    private = tmp_path / "bundle.pem"
    private.write_text(ca_file.read_text())
    env = app_env(server, tmp_path, SQL_HOST=RDS_HOST, SQL_SSL_ROOT_CERT="system")
    command = cli.isolated(
        cli.preflight_command(), {RDS_HOST: "127.0.0.1"}, tmp_path, files={bundle: private}
    )
    result = checked(cli.run_command(command, env, timeout=60), tmp_path, 0)
    plan = result.event("preflight.plan")
    assert (plan["sslmode"], plan["sslrootcert"]) == ("verify-full", str(bundle))
    assert result.event("preflight.ready")["tls"] is True


@pytest.mark.root
def test_system_trust_store_without_the_ca_is_untrusted(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """The OS bundle without the test CA: exit 6 tls_untrusted, at once."""
    server = make_server("system-ca-missing", tls=server_tls, hba=TLS_ONLY_HBA)
    env = app_env(server, tmp_path, SQL_HOST=RDS_HOST, SQL_SSL_ROOT_CERT="system")
    result = run(env, tmp_path, 6, hosts={RDS_HOST: "127.0.0.1"}, workdir=tmp_path)
    assert result.event("preflight.failed")["reason"] == "tls_untrusted"


def test_the_runner_refuses_a_traceback() -> None:
    """Every scenario parses stderr through the runner, which fails on any traceback."""
    with pytest.raises(AssertionError, match="Traceback"):
        cli.parse_events('{"event": "preflight.x"}\nTraceback (most recent call last):\n')


def test_no_deadline_with_a_host_name(plain_server: Any, tmp_path: Path) -> None:
    """PREFLIGHT_TIMEOUT=0 (wait forever) with a name that needs a lookup: ready, exit 0."""
    env = app_env(plain_server, tmp_path, SQL_HOST="localhost", PREFLIGHT_TIMEOUT="0")
    assert run(env, tmp_path, 0).event("preflight.ready")["attempts"] == 1


def test_help_on_a_full_disk_is_still_success(tmp_path: Path) -> None:
    """`preflight --help >/dev/full`: exit 0, not Python's exit 120."""
    with open("/dev/full", "w") as full:
        assert _raw_run(cli.base_env(), "--help", stdout=full, stderr=subprocess.DEVNULL) == 0


def test_password_file_that_is_a_fifo(tmp_path: Path) -> None:
    """A FIFO as SQL_PASSWORD_FILE is refused at once (exit 3), never read without end."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = cli.base_env(
        SQL_HOST="db",
        SQL_DATABASE="d",
        SQL_USER="u",
        SQL_PASSWORD_FILE=str(fifo),
        PREFLIGHT_TIMEOUT="2",
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    result = run(env, tmp_path, 3, timeout=30)
    assert "is not a regular file" in result.event("preflight.failed")["message"]


def _catches_sigterm(pid: int) -> bool:
    """Whether ``pid`` has a SIGTERM handler installed (the SigCgt mask in /proc)."""
    import signal

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(status.split("SigCgt:", 1)[1].split()[0], 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.root
def test_sigterm_during_start_up_as_pid_1(tmp_path: Path) -> None:
    """SIGTERM sent to PID 1 of a new PID namespace the moment it has its first handler
    (before the heavy imports): exit 143 within 1 s of the signal, JSON on stderr.

    (A signal that arrives before the interpreter runs the entry point at all is
    dropped by the kernel for a PID 1 with no handler; that window is Python's own
    start-up.)"""
    import signal
    import time

    env = cli.base_env(
        SQL_HOST="127.0.0.1",
        SQL_PORT="9",
        SQL_DATABASE="d",
        SQL_USER="u",
        PREFLIGHT_TIMEOUT="30",
        PREFLIGHT_TERMINATION_LOG=str(tmp_path / "termination-log"),
    )
    proc = cli.spawn(["unshare", "--pid", "--fork", "--kill-child", *cli.preflight_command()], env)
    try:
        child = None
        for _ in range(2000):  # at most about 20 s on a loaded machine
            found = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            if found and _catches_sigterm(int(found[0])):
                child = int(found[0])
                break
            time.sleep(0.01)
        assert child is not None, "the preflight never installed a SIGTERM handler"
        sent = time.monotonic()
        os.kill(child, signal.SIGTERM)
        proc.proc.wait(timeout=30)
        assert time.monotonic() - sent < 1.5, proc.stderr
    finally:
        proc.kill()
    events = proc.finish().events
    assert (events[-1]["event"], events[-1]["exit_code"]) == ("preflight.interrupted", 143)


def test_a_pgpass_libpq_ignores_keeps_the_log_json(plain_server: Any, tmp_path: Path) -> None:
    """A .pgpass with group/world access (a Secret mounted 0644) and no password: libpq's
    own warning is caught into the failure message, the log stays JSON, exit 4."""
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"*:*:*:*:{APP_PASSWORD}\n")
    pgpass.chmod(0o644)
    env = app_env(plain_server, tmp_path, HOME=str(home))
    del env["SQL_PASSWORD"]
    result = run(env, tmp_path, 4)  # `run` parses every stderr line as JSON
    assert "group or world access" in result.event("preflight.failed")["message"]
    plan = result.event("preflight.plan")
    assert any("libpq ignores" in w for w in plan["warnings"])
