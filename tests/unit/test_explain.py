"""`preflight explain`: the plan as JSON, no network, no password."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight._cli import main

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
                "sslmode": "disable",
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
            {"sslmode": "verify-full", "sslrootcert": "system"},
        ),
        (app("db"), {"kind": "internal", "sslmode": "disable"}),
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


def test_explain_sqlite() -> None:
    """The sqlite engine explains that there is nothing to check."""
    code, out = explain({"SQL_ENGINE": "django.db.backends.sqlite3"})
    assert code == 0
    assert json.loads(out)["engine"] == "sqlite"


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
    password=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=6),
    other=st.dictionaries(st.sampled_from(_VARIABLES), st.text(max_size=40)),
    leak_into=st.sampled_from([None, *_VARIABLES]),
)
def test_password_never_in_explain(
    password: str, other: dict[str, str], leak_into: str | None
) -> None:
    """Whatever the environment (even the password pasted into another variable),
    explain's output never contains it."""
    env = {**app("db"), **other, "SQL_PASSWORD": password}
    if leak_into is not None:
        env[leak_into] = password
    env = {k: v for k, v in env.items() if "\x00" not in v}
    _, out = explain(env)
    json.loads(out)
    assert password not in out
    assert json.dumps(password)[1:-1] not in out
