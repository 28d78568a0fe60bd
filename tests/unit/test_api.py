"""The public verbs without a server: explain() is what the CLI prints, check() validates
and configures nothing, and the package exports exactly its documented names."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Any

import pytest

import preflight
from preflight._cli import main

PASSWORD = "Api-Zx7'@:/%pw"


def app(**extra: str) -> dict[str, str]:
    return {
        "SQL_HOST": "balancer-postgres-rw",
        "SQL_DATABASE": "balancer",
        "SQL_USER": "balancer",
        "SQL_PASSWORD": PASSWORD,
        **extra,
    }


def cli_explain(env: dict[str, str]) -> tuple[int, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["explain", "--log-format", "json"], environ=env)
    return code, json.loads(out.getvalue())


@pytest.mark.parametrize(
    "env",
    [
        app(),
        app(SQL_HOST="balancer.c9akciq32.eu-west-1.rds.amazonaws.com", PREFLIGHT_TIMEOUT="9"),
        app(SQL_PORT="54x2", PREFLIGHT_JITTER="2"),
        app(SQL_DATABASE=PASSWORD, SQL_TYPO="1"),
        {"DATABASE_URL": f"postgres://u:{PASSWORD}@db:5432/app?sslmode=require"},
        {"SQL_ENGINE": "django.db.backends.sqlite3"},
    ],
    ids=["cnpg", "rds", "config-errors", "password-in-a-value", "url", "sqlite"],
)
def test_explain_is_what_the_cli_prints(env: dict[str, str]) -> None:
    """explain() returns the very document `preflight explain` prints, password withheld."""
    _, printed = cli_explain(env)
    document = preflight.explain(env)
    assert document == printed
    assert PASSWORD not in json.dumps(document)


def test_explain_reports_every_problem() -> None:
    """A configuration with two problems: explain() names both variables, like the CLI."""
    document = preflight.explain(app(SQL_PORT="54x2", PREFLIGHT_JITTER="2"))
    assert document["exit_code"] == 3
    assert {p["variable"] for p in document["problems"]} == {"SQL_PORT", "PREFLIGHT_JITTER"}


def test_check_raises_the_config_error_with_every_problem() -> None:
    """check() on an invalid environment raises ConfigError (exit 3) naming each variable,
    before any network."""
    with pytest.raises(preflight.ConfigError) as caught:
        preflight.check(app(SQL_PORT="54x2", PREFLIGHT_JITTER="2"))
    error = caught.value
    assert (error.exit_code, error.reason) == (3, preflight.Reason.CONFIG_INVALID)
    assert {p.variable for p in error.problems} == {"SQL_PORT", "PREFLIGHT_JITTER"}
    assert error.attempts is None


def test_check_on_sqlite_has_nothing_to_wait_for() -> None:
    """SQLite: no server, no attempt; the outcome says so (the CLI logs preflight.skipped)."""
    outcome = preflight.check({"SQL_ENGINE": "django.db.backends.sqlite3"})
    assert outcome == preflight.Outcome(None, 0, 0.0)


@pytest.mark.parametrize("timeout", [-1, float("inf"), float("nan"), True, "5", 1e9])
def test_check_rejects_a_timeout_the_flag_would_reject(timeout: Any) -> None:
    """timeout= is validated as --timeout is: a bad value is a UsageError (exit 2)."""
    with pytest.raises(preflight.UsageError) as caught:
        preflight.check(app(), timeout=timeout)
    assert caught.value.exit_code == 2


def test_the_package_exports_exactly_its_verbs_and_errors() -> None:
    """__all__ is the verbs, the outcome, the errors, Reason and ExitClass; each resolves."""
    assert set(preflight.__all__) == {
        "check",
        "explain",
        "Outcome",
        "Reason",
        "ExitClass",
        "PreflightError",
        "ConfigError",
        "UsageError",
        "AuthFailed",
        "DatabaseMissing",
        "TlsFailed",
        "CheckFailed",
        "Unreachable",
        "Interrupted",
        "Problem",
    }
    assert all(getattr(preflight, name) is not None for name in preflight.__all__)
    errors = [getattr(preflight, n) for n in preflight.__all__ if n.endswith(("Error", "Failed"))]
    assert all(issubclass(e, preflight.PreflightError) for e in errors)


def test_importing_the_package_imports_only_the_standard_library() -> None:
    """`import preflight` (and `preflight.django`) loads no third-party module and leaves
    logging alone; even the check's modules leave psycopg's logger as they found it."""
    code = (
        "import logging, sys\n"
        "before = set(sys.modules)\n"
        "import preflight, preflight.django\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "assert new - set(sys.stdlib_module_names) == {'preflight'}, new\n"
        "import preflight._check, preflight._probe\n"
        "psycopg = logging.getLogger('psycopg')\n"
        "assert psycopg.propagate and not psycopg.handlers, psycopg.handlers\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cli_quiets_psycopg_logging_for_its_process() -> None:
    """The command line (not the import) stops psycopg's log records, so stderr stays JSON."""
    code = (
        "import io, logging, contextlib\n"
        "from preflight._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['explain'], environ={'SQL_ENGINE': 'django.db.backends.sqlite3'})\n"
        "psycopg = logging.getLogger('psycopg')\n"
        "assert not psycopg.propagate and psycopg.handlers\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
