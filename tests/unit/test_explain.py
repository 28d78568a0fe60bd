"""`preflight explain`: the plan as JSON, no network, no password."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from preflight._cli import main
from preflight._redact import normalise as _normalise

PASSWORD = "Explain-Zx7'@:/%pw"
REQUIRED_KEYS = {
    "kind",
    "evidence",
    "host",
    "port",
    "database",
    "user",
    "password",
    "sslmode",
    "sslmode_source",
    "sslrootcert",
    "target_session_attrs",
    "warnings",
}


def explain(env: dict[str, str], *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["explain", "--log-format", "json", *args], environ=env)
    return code, out.getvalue()


def app(host: str, **extra: str) -> dict[str, str]:
    return {
        "SQL_HOST": host,
        "SQL_DATABASE": "balancer",
        "SQL_USER": "balancer",
        "SQL_PASSWORD": PASSWORD,
        **extra,
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            app("balancer-postgres-rw"),
            {
                "kind": "cloudnativepg",
                "sslmode": "prefer",
                "target_session_attrs": "read-write",
                "role": "rw",
            },
        ),
        (app("balancer-postgres-ro"), {"kind": "cloudnativepg", "target_session_attrs": None}),
        (
            app("x.abc.eu-west-1.rds.amazonaws.com"),
            {"kind": "aws-rds", "sslmode": "require", "sslmode_source": "default"},
        ),
        (
            app("x.abc.eu-west-1.rds.amazonaws.com", SQL_SSL_ROOT_CERT="system"),
            {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/certs/ca-certificates.crt"},
        ),
        (app("db"), {"kind": "internal", "sslmode": "prefer"}),
        (
            app("shared-cluster-rw.cloudnative-pg.svc.cluster.local"),
            {"kind": "cloudnativepg", "sslmode": "prefer", "role": "rw"},
        ),
        (
            app("x.abc.eu-west-1.rds.amazonaws.com", SQL_SSL_MODE="require"),
            {"kind": "aws-rds", "sslmode": "require", "sslmode_source": "explicit"},
        ),
        (
            app("localhost", SQL_SSL_MODE="Require "),
            {"kind": "local", "sslmode": "require", "sslmode_source": "explicit"},
        ),
        (app("db.example.com", SQL_SSL_MODE="disable"), {"kind": "external", "sslmode": "disable"}),
        (app("db", SQL_CONNECTION_TYPE="external"), {"kind": "external", "sslmode": "require"}),
    ],
)
def test_explain_resolves_the_plan(env: dict[str, str], expected: dict[str, Any]) -> None:
    """explain prints one JSON object with the resolved plan and exits 0."""
    code, out = explain(env)
    document = json.loads(out)
    assert code == 0
    assert document.keys() >= REQUIRED_KEYS
    assert document["password"] == "set"
    assert {k: document[k] for k in expected} == expected


def test_explain_warns_about_weak_mode_outside() -> None:
    """A weak mode for an external host shows up in warnings."""
    _, out = explain(app("db.example.com", SQL_SSL_MODE="disable"))
    assert any("unencrypted" in w for w in json.loads(out)["warnings"])


def test_explain_flags_win() -> None:
    """A flag overrides its PREFLIGHT_* variable."""
    _, out = explain(app("db", PREFLIGHT_TIMEOUT="5"), "--timeout", "9")
    assert json.loads(out)["preflight"]["timeout"] == 9.0


def test_explain_invalid_lists_problems_and_exits_3() -> None:
    """Invalid configuration: a JSON list of problems and exit code 3."""
    code, out = explain({"SQL_PORT": "54x2", "SQL_PASSWORD": PASSWORD})
    document = json.loads(out)
    assert code == 3
    assert {"variable": "SQL_PORT", "message": '"54x2" is not a port number'} in document[
        "problems"
    ]
    assert PASSWORD not in out


def test_balancer_dev_env_stays_readable() -> None:
    """balancer's dev env (user and password both `balancer`): database and host as they are,
    the user withheld with the reason given."""
    env = {
        "SQL_ENGINE": "django.db.backends.postgresql",
        "SQL_HOST": "db",
        "SQL_PORT": "5432",
        "SQL_DATABASE": "balancer_dev",
        "SQL_USER": "balancer",
        "SQL_PASSWORD": "balancer",
    }
    code, out = explain(env)
    document = json.loads(out)
    assert code == 0
    assert (document["database"], document["host"]) == ("balancer_dev", "db")
    assert document["user"] == "[withheld]"
    assert any(w.startswith("SQL_USER seems to hold the password") for w in document["warnings"])
    assert document["engine"] == "postgresql"


@pytest.mark.parametrize(
    ("variable", "value", "listed"),
    [
        ("PGHOSTADDR", "127.0.0.1", "127.0.0.1"),
        ("PGOPTIONS", "-c nosuch_param=1", "-c nosuch_param=1"),
        ("PGPASSWORD", "Pg-env-Secret-99", "set"),
        ("PGTARGETSESSIONATTRS", "standby", "standby"),
    ],
)
def test_explain_lists_libpq_variables(variable: str, value: str, listed: str) -> None:
    """Each PG* variable that can change the connection is listed, with a warning."""
    _, out = explain({**app("db"), variable: value})
    document = json.loads(out)
    assert document["libpq_env"][variable] == listed
    assert any(w.startswith(variable) for w in document["warnings"])
    assert "Pg-env-Secret-99" not in out


def test_explain_names_a_pgpass_file(tmp_path: Any) -> None:
    """With no password set, a ~/.pgpass libpq would read is named."""
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:*:Pgpass-Secret-77\n")
    env = {k: v for k, v in app("db").items() if k != "SQL_PASSWORD"}
    _, out = explain({**env, "PGPASSFILE": str(pgpass)})
    document = json.loads(out)
    assert document["password"] == "unset"
    assert document["libpq_env"]["PGPASSFILE"] == str(pgpass)
    assert "Pgpass-Secret-77" not in out


def test_explain_warns_about_unknown_variables() -> None:
    """A typo of a known variable is a warning with the closest name."""
    _, out = explain({**app("db"), "SQL_SSLMODE": "require"})
    assert any("did you mean SQL_SSL_MODE?" in w for w in json.loads(out)["warnings"])


def test_explain_of_an_invalid_config_still_names_typos() -> None:
    """With problems, explain lists them and the unknown-variable warnings too."""
    code, out = explain({"SQL_PORT": "x", "SQL_SSLMODE": "require"})
    document = json.loads(out)
    assert code == 3
    assert any("did you mean SQL_SSL_MODE?" in w for w in document["warnings"])


def test_explain_system_without_a_trust_store_is_exit_3(tmp_path: Any) -> None:
    """SQL_SSL_ROOT_CERT=system where no bundle exists: exit 3 naming what was looked for."""
    env = app("x.abc.eu-west-1.rds.amazonaws.com", SQL_SSL_ROOT_CERT="system")
    code, out = explain({**env, "SSL_CERT_FILE": str(tmp_path / "none.pem")})
    assert code == 3
    (problem,) = json.loads(out)["problems"]
    assert problem["variable"] == "SQL_SSL_ROOT_CERT"
    assert str(tmp_path / "none.pem") in problem["message"]


def test_explain_sqlite() -> None:
    """The sqlite engine explains that there is nothing to check."""
    code, out = explain({"SQL_ENGINE": "django.db.backends.sqlite3"})
    assert code == 0
    assert json.loads(out)["engine"] == "sqlite"


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    return set()


_KEYS = _keys(json.loads(explain(app("db"))[1])) | {"error", "exit_code", "problems", "variable"}

_VARIABLES = [
    "SQL_HOST",
    "SQL_PORT",
    "SQL_DATABASE",
    "SQL_USER",
    "SQL_SSL_MODE",
    "SQL_SSL_ROOT_CERT",
    "DATABASE_URL",
    "SQL_CONNECTION_TYPE",
]


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=12),
    other=st.dictionaries(st.sampled_from(_VARIABLES), st.text(max_size=40)),
    leak_into=st.sampled_from([None, *_VARIABLES]),
)
def test_password_never_in_explain(
    password: str, other: dict[str, str], leak_into: str | None
) -> None:
    """Whatever the environment (even a long password pasted into another variable),
    explain's output never contains it, and stays valid JSON."""
    # The documented limit: a password spelled like one of our own keys shows in that key.
    assume(not any(_normalise(password) in _normalise(key) for key in _KEYS))
    env = {**app("db"), **other, "SQL_PASSWORD": password}
    if leak_into is not None:
        env[leak_into] = password
    env = {k: v for k, v in env.items() if "\x00" not in v}
    _, out = explain(env)
    json.loads(out)
    assert password not in out
    assert json.dumps(password)[1:-1] not in out
