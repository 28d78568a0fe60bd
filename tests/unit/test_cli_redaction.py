"""End to end: whatever the password, it survives in no output of the CLI.

Runs the real ``main()`` in-process (no network: configuration errors and
``explain``) and reads stdout, stderr (the JSON events) and the termination
message, with the same oracle as the redactor's own properties.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from preflight._cli import main
from tests.unit.test_redact import COMMON, survives

# balancer's dev env, with the password put where the test says.
DEV = {
    "SQL_ENGINE": "django.db.backends.postgresql",
    "SQL_HOST": "db",
    "SQL_PORT": "5432",
    "SQL_DATABASE": "balancer_dev",
    "SQL_USER": "balancer",
}
NEUTRAL = "Qq7-neutral-placeholder-9"
PASSWORDS = st.one_of(
    st.sampled_from(COMMON),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=64),
)
# Where a careless operator pastes the password (SQL_PORT makes a configuration error
# that quotes the value; PREFLIGHT_TIMEOUT one that the option parser quotes).
PASTED = st.sampled_from(
    [None, "SQL_DATABASE", "SQL_HOST", "SQL_PORT", "PREFLIGHT_TIMEOUT", "SQL_SSL_MODE"]
)


def outputs(env: dict[str, str], termination: Path, *args: str) -> str:
    """Everything the CLI wrote: stdout, stderr and the termination message."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        main([*args, "--termination-log", str(termination)], environ=env)
    message = termination.read_text() if termination.exists() else ""
    termination.unlink(missing_ok=True)
    for line in err.getvalue().splitlines():
        json.loads(line)  # the log stays valid JSON
    return "\n".join((out.getvalue(), err.getvalue(), message))


def environment(password: str, pasted: str | None) -> dict[str, str]:
    env = {**DEV, "SQL_PASSWORD": password, "PREFLIGHT_LOG_FORMAT": "json"}
    if pasted is not None:
        env[pasted] = password
    return env


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=PASSWORDS, pasted=PASTED, command=st.sampled_from([["explain"], ["check"]]))
def test_password_survives_in_no_output(
    tmp_path: Path, password: str, pasted: str | None, command: list[str]
) -> None:
    """stdout, stderr and the termination message never hold the password in any form."""
    assume("\x00" not in password and password.strip())
    neutral = environment(NEUTRAL, pasted)
    if command == ["check"]:
        neutral["PREFLIGHT_JITTER"] = "2"
    skeleton = outputs(neutral, tmp_path / "t", *command)
    # The documented limit: a password already spelled by our own vocabulary.
    assume(not survives(skeleton, password))
    env = environment(password, pasted)
    if command == ["check"]:
        env["PREFLIGHT_JITTER"] = "2"  # a configuration error: no network in a unit test
    assert not survives(outputs(env, tmp_path / "t", *command), password)


def test_balancer_dev_env_is_readable_in_the_failure(tmp_path: Path) -> None:
    """balancer's dev env with a typo: the database name shows as it is, the user is withheld."""
    env = {**environment("balancer", None), "SQL_PORT": "54x2"}
    text = outputs(env, tmp_path / "t", "check")
    assert '"54x2" is not a port number' in text
    explained = json.loads(outputs(environment("balancer", None), tmp_path / "t", "explain"))
    assert explained["database"] == "balancer_dev"
    assert explained["host"] == "db"
    assert explained["user"] == "[withheld]"


# DATABASE_URL parameters that carry a secret: sslpassword, and options that set one.
URL_SECRET_AT = st.sampled_from(
    [
        "postgres://balancer@db/balancer_dev?sslpassword={}",
        "postgres://balancer@db/balancer_dev?sslcert=/c.crt&sslkey=/c.key&sslpassword={}",
        "postgres://balancer@db/balancer_dev?options=-c%20app.password%3D{}",
        "postgres://balancer@db/balancer_dev?options=-c%20search_path%3Dapp%20-c%20x.secret%3D{}",
        "postgres://balancer@db/balancer_dev?options=-c%20vault.token%3D{}",
        "postgres://balancer@db/balancer_dev?oauth_issuer=https://i&oauth_client_secret={}",
        "postgres://balancer:{}@db/balancer_dev?sslpassword={}",
        "postgres://balancer@db/balancer_dev?sslpassword%3D{}",
        "postgres://balancer@db/balancer_dev?password%253D{}=x",
        # the '?' forgotten before the parameters
        "postgres://balancer@db/balancer_dev&sslpassword={}",
        "postgres://balancer@db&sslpassword={}:5432/balancer_dev",
    ]
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    secret=PASSWORDS,
    template=URL_SECRET_AT,
    command=st.sampled_from([["explain"], ["check"]]),
)
def test_url_secret_parameters_survive_in_no_output(
    tmp_path: Path, secret: str, template: str, command: list[str]
) -> None:
    """sslpassword, and an options setting named like a password, never reach any output."""
    from urllib.parse import quote

    assume("\x00" not in secret and secret.strip() and not any(c.isspace() for c in secret))

    def env(value: str) -> dict[str, str]:
        url = template.format(*[quote(value, safe="")] * template.count("{}"))
        found = {"DATABASE_URL": url, "PREFLIGHT_LOG_FORMAT": "json"}
        if command == ["check"]:
            found["PREFLIGHT_JITTER"] = "2"  # a configuration error: no network here
        return found

    skeleton = outputs(env(NEUTRAL), tmp_path / "t", *command)
    assume(not survives(skeleton, secret))
    assert not survives(outputs(env(secret), tmp_path / "t", *command), secret)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    secret=st.one_of(PASSWORDS, st.sampled_from(["Zm9v/YmFy+cXV4=", "/Zm9vYmFy+cXV4="])),
    command=st.sampled_from([["explain"], ["check"]]),
)
def test_a_password_pasted_into_the_file_variable_is_never_echoed(
    tmp_path: Path, secret: str, command: list[str]
) -> None:
    """SQL_PASSWORD_FILE holding something that is not a path (the password itself) is
    reported without its value, in every output."""
    assume("\x00" not in secret and secret.strip())
    assume(not os.path.lexists(secret.strip()))
    env = {**DEV, "SQL_PASSWORD_FILE": secret, "PREFLIGHT_LOG_FORMAT": "json"}
    skeleton = outputs({**env, "SQL_PASSWORD_FILE": NEUTRAL}, tmp_path / "t", *command)
    assume(not survives(skeleton, secret))
    text = outputs(env, tmp_path / "t", *command)
    assert "SQL_PASSWORD_FILE" in text
    assert "does not look like a file path" in text or "names no file" in text
    assert not survives(text, secret)


# A URL broken around a secret in any way: URL punctuation before and after the slot.
URL_NOISE = st.lists(
    st.sampled_from(
        [*"@:/?#&=%[],", "%3D", "%40", "%2F", "%25", "host=", "port=5", "db", "app", "x=1"]
    ),
    max_size=6,
).map("".join)
URL_PREFIX = st.lists(
    st.sampled_from(["@", ":", "/", "#", "%", "%40", "[", "]", ",", "db", "app"]), max_size=4
).map("".join)
SECRET_SLOT = st.sampled_from(
    [
        *("u:{}@", "u:{}", ":{}@", "?password={}", "&sslpassword={}", "?sslpassword={}"),
        *("?options=-c%20a.password%3D{}", "?oauth_client_secret={}", "?sslpassword%253D{}=1"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    before=URL_PREFIX,
    slot=SECRET_SLOT,
    after=URL_NOISE,
    encode=st.booleans(),
    secret=st.sampled_from(["Zq9-longsecret-77", "hunter2x", "S3cr/et+key==", "p@ss:w/rd"]),
)
def test_a_broken_url_never_shows_its_secret(
    before: str, slot: str, after: str, encode: bool, secret: str
) -> None:
    """Whatever breaks a URL around its password or secret parameter, explain's output
    (problems, warnings, plan) never shows the secret."""
    from urllib.parse import quote

    url = "postgres://" + before + slot.format(quote(secret, safe="") if encode else secret)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        main(["explain"], environ={"DATABASE_URL": url + after, "PREFLIGHT_LOG_FORMAT": "json"})
    assert not survives(out.getvalue() + err.getvalue(), secret)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(secret=PASSWORDS, command=st.sampled_from([["explain"], ["check"]]))
def test_a_secret_setting_in_pgoptions_is_withheld_like_the_urls_options(
    tmp_path: Path, secret: str, command: list[str]
) -> None:
    """PGOPTIONS=-c app.password=... is withheld as the URL's options=... is."""
    assume("\x00" not in secret and secret.strip() and not any(c.isspace() for c in secret))

    def env(value: str) -> dict[str, str]:
        found = {**DEV, "SQL_PASSWORD": NEUTRAL, "PREFLIGHT_LOG_FORMAT": "json"}
        found["PGOPTIONS"] = f"-c search_path=app -c app.password={value}"
        if command == ["check"]:
            found["PREFLIGHT_JITTER"] = "2"  # a configuration error: no network here
        return found

    assume(not survives(outputs(env("Qq7-other-placeholder-3"), tmp_path / "t", *command), secret))
    assert not survives(outputs(env(secret), tmp_path / "t", *command), secret)
