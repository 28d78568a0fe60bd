"""``preflight.check()`` against real servers: the same outcome as the CLI (ready, wrong
password, deadline), and the documented management command and pytest fixture built on it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import preflight
from preflight._check import RetryDetails
from tests.support import appvenv, cli
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, free_port

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"


def app_env(host: str, port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    variables = {
        "SQL_HOST": host,
        "SQL_PORT": str(port),
        "SQL_DATABASE": APP_DB,
        "SQL_USER": APP_USER,
        "SQL_PASSWORD": APP_PASSWORD,
        "PREFLIGHT_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }
    return cli.base_env(**{**variables, **extra})


def test_ready_as_the_cli_says(plain_server: Any, tmp_path: Path) -> None:
    """A server that is up: check() returns after one attempt with the facts the CLI logs."""
    env = app_env(plain_server.host, plain_server.port, tmp_path)
    outcome = preflight.check(env)
    ready = cli.run(env).event("preflight.ready")
    assert outcome.facts is not None
    assert outcome.attempts == ready["attempts"] == 1
    assert outcome.facts.server_version == ready["server_version"]
    assert (outcome.facts.tls, outcome.facts.in_recovery) == (ready["tls"], ready["in_recovery"])
    assert 0 < outcome.elapsed < 30


def test_wrong_password_as_the_cli_says(plain_server: Any, tmp_path: Path) -> None:
    """A wrong password: check() raises AuthFailed (exit 4) after one attempt, with the
    CLI's reason, message and hint, and the password nowhere in it."""
    env = app_env(plain_server.host, plain_server.port, tmp_path, SQL_PASSWORD="Wr0ng-pw'@:/%")
    with pytest.raises(preflight.AuthFailed) as caught:
        preflight.check(env)
    error = caught.value
    result = cli.run(env)
    failed = result.event("preflight.failed")
    assert result.code == error.exit_code == 4
    assert (str(error.reason), error.message, error.hint) == (
        failed["reason"],
        failed["message"],
        failed["hint"],
    )
    assert error.attempts == failed["attempts"] == 1
    cli.assert_no_secret("Wr0ng-pw'@:/%", error.one_line(), result.stderr)


def test_deadline_as_the_cli_says(tmp_path: Path) -> None:
    """Nothing listening: check() retries, reports each retry to on_retry, and raises
    Unreachable (exit 10, reason refused) at the deadline given by timeout=, as the CLI
    does with --timeout."""
    env = app_env("127.0.0.1", free_port(), tmp_path, PREFLIGHT_TIMEOUT="60")
    seen: list[RetryDetails] = []
    began = time.monotonic()
    with pytest.raises(preflight.Unreachable) as caught:
        preflight.check(env, timeout=2, on_retry=seen.append)
    took = time.monotonic() - began
    error = caught.value
    result = cli.run(env, "--timeout", "2")
    failed = result.event("preflight.failed")
    assert result.code == error.exit_code == 10
    assert str(error.reason) == failed["reason"] == "refused"
    assert 2 <= took < 4
    assert error.elapsed is not None
    assert 2 <= error.elapsed < 3
    assert error.attempts is not None
    assert error.attempts >= 4
    # Every failed attempt that was followed by a wait reached the hook, in order.
    assert [d.attempt for d in seen] == list(range(1, len(seen) + 1))
    assert error.attempts - 1 <= len(seen) <= error.attempts
    assert all(d.error.reason is preflight.Reason.REFUSED for d in seen)


def test_check_configures_no_logging_and_no_signals(tmp_path: Path) -> None:
    """A failing check() in a plain interpreter prints nothing, configures neither structlog
    nor psycopg's logger, and leaves the signal handlers as they were."""
    env = app_env("127.0.0.1", free_port(), tmp_path, PREFLIGHT_TIMEOUT="1")
    code = (
        "import logging, signal, structlog, preflight\n"
        "handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, "
        "signal.SIGALRM)}\n"
        "try:\n"
        "    preflight.check()\n"
        "except preflight.Unreachable:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "assert not structlog.is_configured()\n"
        "psycopg = logging.getLogger('psycopg')\n"
        "assert psycopg.propagate and not psycopg.handlers\n"
        "assert handlers == {s: signal.getsignal(s) for s in handlers}, handlers\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = appvenv.app_command(appvenv.test_venv(), "manage.py", "wait_for_db", *args)
    return subprocess.run(
        command, cwd=appvenv.DJANGOAPP, env=env, capture_output=True, text=True, timeout=120
    )


def test_management_command_example(plain_server: Any, tmp_path: Path) -> None:
    """The documented `manage.py wait_for_db`: exit 0 when ready, the preflight's exit code
    and one-line reason when not (here a wrong password: 4, auth_failed)."""
    env = app_env(plain_server.host, plain_server.port, tmp_path)
    ready = _manage(env, "--timeout", "30")
    assert ready.returncode == 0, ready.stderr
    assert "database ready after 1 attempt(s)" in ready.stdout
    denied = _manage({**env, "SQL_PASSWORD": "not-it"})
    assert denied.returncode == 4, denied.stderr
    assert "auth_failed (auth_failed)" in denied.stderr


def test_pytest_fixture_example(plain_server: Any, tmp_path: Path) -> None:
    """The documented `database_ready` fixture: a test that uses it passes when the database
    is up; with nothing listening the session stops with the reason and exit code 10."""
    (tmp_path / "conftest.py").write_text((EXAMPLES / "database_ready.py").read_text())
    (tmp_path / "test_app.py").write_text(
        "def test_uses_the_database(database_ready):\n"
        "    assert database_ready.facts.server_version\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    env = app_env(plain_server.host, plain_server.port, tmp_path)
    up = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stdout
    assert "1 passed" in up.stdout
    env = app_env("127.0.0.1", free_port(), tmp_path, PREFLIGHT_TIMEOUT="1")
    down = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert down.returncode == 10, down.stdout
    assert "unreachable (refused)" in down.stdout + down.stderr
