"""The environment contract, read in one pass: defaults, every problem, secrets, warnings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight._config import load
from preflight._hosts import Kind
from preflight._options import Options
from preflight._settings import PASSWORD_FILE_LIMIT, Secret

PASSWORD = "Xy9-contract'secret@:/%"
BASE = {
    "SQL_HOST": "db",
    "SQL_DATABASE": "balancer",
    "SQL_USER": "balancer",
    "SQL_PASSWORD": PASSWORD,
}


def problems(env: dict[str, str]) -> dict[str, str]:
    found = load(env).problems
    assert found, "expected at least one problem"
    return {p.variable: p.message for p in found}


def test_defaults() -> None:
    """Port 5432, PostgreSQL engine and the documented PREFLIGHT_* defaults."""
    config = load(BASE)
    settings, options = config.settings, config.options
    assert config.problems == ()
    assert config.plan is not None
    assert settings.engine == "postgresql"
    assert settings.port == 5432
    assert settings.password == Secret(PASSWORD)
    assert settings.sslmode is None
    assert options == Options()
    assert (options.timeout, options.connect_timeout) == (60.0, 5)


@pytest.mark.parametrize(
    ("overrides", "variable", "message"),
    [
        ({"SQL_PORT": "54x2"}, "SQL_PORT", '"54x2" is not a port number'),
        ({"SQL_PORT": "0"}, "SQL_PORT", "0 is outside the port range 1-65535"),
        ({"SQL_PORT": "65536"}, "SQL_PORT", "65536 is outside the port range 1-65535"),
        ({"SQL_HOST": "postgres://db"}, "SQL_HOST", "looks like a URL"),
        (
            {"SQL_HOST": "db:5432"},
            "SQL_HOST",
            "includes a port; give the host db and the port 5432",
        ),
        ({"SQL_HOST": "[::1]:5432"}, "SQL_HOST", "give the host ::1 and the port 5432 apart"),
        ({"SQL_HOST": "a,b"}, "SQL_HOST", "several hosts"),
        ({"SQL_HOST": "bad host"}, "SQL_HOST", "not a valid host name"),
        ({"SQL_HOST": "user@db"}, "SQL_HOST", "contains '@'"),
        ({"SQL_HOST": ""}, "SQL_HOST", "is not set"),
        ({"SQL_DATABASE": " "}, "SQL_DATABASE", "is not set"),
        ({"SQL_USER": ""}, "SQL_USER", "is not set"),
        ({"SQL_SSL_MODE": "required"}, "SQL_SSL_MODE", "did you mean require?"),
        ({"SQL_SSL_MODE": "on"}, "SQL_SSL_MODE", "is not one of disable, allow"),
        ({"SQL_ENGINE": "django.db.backends.mysql"}, "SQL_ENGINE", "is not supported"),
        ({"SQL_CONNECTION_TYPE": "rds"}, "SQL_CONNECTION_TYPE", "is not one of local, aws-rds"),
        ({"SQL_PASSWORD_FILE": "/x"}, "SQL_PASSWORD_FILE", "together with SQL_PASSWORD"),
        ({"PREFLIGHT_TIMEOUT": "soon"}, "PREFLIGHT_TIMEOUT", "is not a number of seconds"),
        ({"PREFLIGHT_TIMEOUT": "-1"}, "PREFLIGHT_TIMEOUT", "from 0 to"),
        ({"PREFLIGHT_TIMEOUT": "nan"}, "PREFLIGHT_TIMEOUT", "from 0 to"),
        ({"PREFLIGHT_TIMEOUT": "1e300"}, "PREFLIGHT_TIMEOUT", "from 0 to"),
        ({"PREFLIGHT_BACKOFF_MAX": "1e300"}, "PREFLIGHT_BACKOFF_MAX", "from 0 to 3600"),
        ({"PREFLIGHT_CONNECT_TIMEOUT": "1"}, "PREFLIGHT_CONNECT_TIMEOUT", "from 2"),
        ({"SQL_HOST": "db\udcff"}, "SQL_HOST", "not valid UTF-8"),
        ({"SQL_PASSWORD": "pw\udcff"}, "SQL_PASSWORD", "not valid UTF-8"),
        (
            {"SQL_SSL_ROOT_CERT": "system", "SQL_SSL_MODE": "verify-ca"},
            "SQL_SSL_MODE",
            "need verify-full",
        ),
        ({"PREFLIGHT_JITTER": "2"}, "PREFLIGHT_JITTER", "not between 0 and 1"),
        ({"PREFLIGHT_BACKOFF_INITIAL": "0"}, "PREFLIGHT_BACKOFF_INITIAL", "more than 0"),
        ({"PREFLIGHT_BACKOFF_MAX": "0.05"}, "PREFLIGHT_BACKOFF_MAX", "less than"),
        ({"PREFLIGHT_RETRY_AUTH": "maybe"}, "PREFLIGHT_RETRY_AUTH", "yes/no"),
        ({"PREFLIGHT_LOG_FORMAT": "xml"}, "PREFLIGHT_LOG_FORMAT", "auto, json, console"),
        (
            {"PREFLIGHT_REQUIRE_EXTENSIONS": "vector,pg trgm"},
            "PREFLIGHT_REQUIRE_EXTENSIONS",
            '"pg trgm" is not an extension name',
        ),
    ],
)
def test_each_problem_names_variable_and_fault(
    overrides: dict[str, str], variable: str, message: str
) -> None:
    """Every invalid value is reported with its variable and what is wrong."""
    found = problems({**BASE, **overrides})
    assert message in found[variable]


def test_every_problem_at_once() -> None:
    """Validation reports all problems in one go, not the first one only."""
    found = problems(
        {"SQL_PORT": "54x2", "SQL_SSL_MODE": "nope", "PREFLIGHT_TIMEOUT": "x", "SQL_PASSWORD": "p"}
    )
    assert {
        "SQL_HOST",
        "SQL_PORT",
        "SQL_DATABASE",
        "SQL_USER",
        "SQL_SSL_MODE",
        "PREFLIGHT_TIMEOUT",
    } <= found.keys()


def test_config_error_exit_code_and_no_password() -> None:
    """A config error exits 3 and its text never holds the password."""
    error = load({**BASE, "SQL_HOST": PASSWORD}).error()
    assert error is not None
    assert error.exit_code == 3
    assert PASSWORD not in str(error)


def test_a_valid_environment_has_no_error() -> None:
    """No problem, no error: the plan is there."""
    config = load(BASE)
    assert config.error() is None
    assert config.plan is not None
    assert config.secrets == (PASSWORD,)


@pytest.mark.parametrize(
    ("raw", "mode"),
    [(" Require ", "require"), ("VERIFY-FULL", "verify-full"), ("disable\n", "disable")],
)
def test_ssl_mode_forgives_case_and_space(raw: str, mode: str) -> None:
    """Surrounding whitespace and case are forgiven in SQL_SSL_MODE."""
    assert load({**BASE, "SQL_SSL_MODE": raw}).settings.sslmode == mode


@pytest.mark.parametrize(
    "engine", ["django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"]
)
def test_postgresql_engines(engine: str) -> None:
    """Both spellings of Django's PostgreSQL engine are accepted."""
    assert load({**BASE, "SQL_ENGINE": engine}).settings.engine == "postgresql"


def test_sqlite_needs_nothing_else() -> None:
    """The sqlite engine needs no host, user or database."""
    config = load({"SQL_ENGINE": "django.db.backends.sqlite3"})
    assert config.settings.engine == "sqlite"
    assert (config.problems, config.plan) == ((), None)


def test_connection_type_is_read() -> None:
    """SQL_CONNECTION_TYPE is parsed into a Kind."""
    settings = load({**BASE, "SQL_CONNECTION_TYPE": " AWS-RDS "}).settings
    assert settings.connection_type is Kind.AWS_RDS


def test_password_file(tmp_path: Path) -> None:
    """SQL_PASSWORD_FILE is read, without its trailing newline."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    env = {k: v for k, v in BASE.items() if k != "SQL_PASSWORD"}
    config = load({**env, "SQL_PASSWORD_FILE": str(secret)})
    assert config.settings.password == Secret(PASSWORD)
    assert config.settings.password_source == "SQL_PASSWORD_FILE"
    assert PASSWORD in config.secrets


def test_password_file_missing(tmp_path: Path) -> None:
    """A missing password file in a directory that exists is an error naming the path."""
    env = {k: v for k, v in BASE.items() if k != "SQL_PASSWORD"}
    found = problems({**env, "SQL_PASSWORD_FILE": f"{tmp_path}/password"})
    assert f"cannot read {tmp_path}/password" in found["SQL_PASSWORD_FILE"]


@pytest.mark.parametrize(
    "value", ["Zm9v/YmFy+cXV4=", "/Zm9vYmFy+cXV4=", "/nonexistent/password", "a/b", "./x/y"]
)
def test_a_file_value_whose_directory_is_missing_is_not_shown(value: str) -> None:
    """A value naming nothing that exists (a base64 password has '/') is reported unshown."""
    env = {k: v for k, v in BASE.items() if k != "SQL_PASSWORD"}
    config = load({**env, "SQL_PASSWORD_FILE": value})
    (problem,) = config.problems
    assert problem.variable == "SQL_PASSWORD_FILE"
    assert value not in problem.message
    assert "names no file" in problem.message
    assert value in config.secrets


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"x" * (PASSWORD_FILE_LIMIT + 1), f"larger than {PASSWORD_FILE_LIMIT} bytes"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_password_file_bad_content(tmp_path: Path, content: bytes, message: str) -> None:
    """An empty, oversized or binary password file is a configuration error (exit 3)."""
    secret = tmp_path / "password"
    secret.write_bytes(content)
    env = {k: v for k, v in BASE.items() if k != "SQL_PASSWORD"}
    assert message in problems({**env, "SQL_PASSWORD_FILE": str(secret)})["SQL_PASSWORD_FILE"]


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_password_file_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    """/dev/zero or a FIFO nobody writes to: refused at once, never read without end."""
    path = kind
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    env = {k: v for k, v in BASE.items() if k != "SQL_PASSWORD"}
    found = problems({**env, "SQL_PASSWORD_FILE": path})["SQL_PASSWORD_FILE"]
    assert found == f"{path} is not a regular file"


@pytest.mark.parametrize("variable", ["SQL_DATABASE", "SQL_USER", "SQL_HOST", "PREFLIGHT_JITTER"])
def test_a_huge_value_is_refused_before_any_work(variable: str) -> None:
    """A value of 100 kB is a mistake: refused by name, not sent to the server."""
    assert "longer than" in problems({**BASE, variable: "x" * 100_000})[variable]


def test_a_socket_directory_too_long_for_a_socket_path() -> None:
    """A socket directory that cannot fit sun_path with .s.PGSQL.<port> is exit 3."""
    assert "socket path" in problems({**BASE, "SQL_HOST": "/" + "d" * 100})["SQL_HOST"]


def test_an_ip_with_a_trailing_dot_reaches_libpq_without_it() -> None:
    """127.0.0.1. would be looked up as a name by libpq: the dot is dropped."""
    plan = load({**BASE, "SQL_HOST": "127.0.0.1."}).plan
    assert plan is not None
    assert plan.libpq_params()["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("typo", "known"),
    [
        ("PREFLIGHT_TIMOUT", "PREFLIGHT_TIMEOUT"),
        ("SQL_PASWORD", "SQL_PASSWORD"),
        ("SQL_SSLMODE", "SQL_SSL_MODE"),
    ],
)
def test_unknown_variables_are_named_with_the_closest(typo: str, known: str) -> None:
    """A misspelt SQL_*/PREFLIGHT_* variable gets a warning naming the known one."""
    warnings = load({**BASE, typo: "1"}).warnings
    assert len(warnings) == 1
    assert typo in warnings[0]
    assert f"did you mean {known}?" in warnings[0]


def test_known_variables_get_no_warning() -> None:
    """The documented variables are not flagged."""
    assert load({**BASE, "PREFLIGHT_TIMEOUT": "3", "SQL_PORT": "5432"}).warnings == ()


def test_empty_log_format_counts_as_unset() -> None:
    """PREFLIGHT_LOG_FORMAT= (empty) is the default, as docs/configuration.md says."""
    config = load({**BASE, "PREFLIGHT_LOG_FORMAT": ""})
    assert (config.problems, config.options.log_format) == ((), "auto")


@pytest.mark.parametrize(
    ("raw", "host"), [("[::1]", "::1"), (" db ", "db"), ("[fe80::1]", "fe80::1")]
)
def test_host_as_libpq_takes_it(raw: str, host: str) -> None:
    """Brackets around IPv6 and surrounding space are removed before libpq sees the host."""
    config = load({**BASE, "SQL_HOST": raw})
    assert config.settings.host == host
    assert config.plan is not None
    assert config.plan.libpq_params()["host"] == host


def test_secret_never_shows() -> None:
    """repr and str of a Secret hide the value."""
    assert PASSWORD not in repr(Secret(PASSWORD)) + str(Secret(PASSWORD))


# --- DATABASE_URL ---

URL = "postgres://balancer:Xy9-contract%27secret%40%3A%2F%25@db.example.com:6432/balancer?sslmode=verify-full"


def test_database_url_alone() -> None:
    """DATABASE_URL alone supplies every connection setting, percent-decoded."""
    settings = load({"DATABASE_URL": URL}).settings
    assert (settings.host, settings.port, settings.database, settings.user) == (
        "db.example.com",
        6432,
        "balancer",
        "balancer",
    )
    assert settings.password == Secret(PASSWORD)
    assert settings.sslmode == "verify-full"
    assert settings.source == "DATABASE_URL"


def test_database_url_agreeing_variables_are_fine() -> None:
    """SQL_* may repeat what the URL says, or fill in what it leaves out."""
    config = load(
        {"DATABASE_URL": URL, "SQL_HOST": "DB.example.com.", "SQL_SSL_ROOT_CERT": "/ca.pem"}
    )
    assert config.problems == ()
    assert config.settings.sslrootcert == "/ca.pem"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SQL_HOST", "other"),
        ("SQL_PORT", "5432"),
        ("SQL_DATABASE", "x"),
        ("SQL_USER", "x"),
        ("SQL_SSL_MODE", "disable"),
    ],
)
def test_database_url_conflict_is_an_error(variable: str, value: str) -> None:
    """A SQL_* value that contradicts DATABASE_URL is an error, not a guess."""
    assert "conflicts with" in problems({"DATABASE_URL": URL, variable: value})[variable]


def test_database_url_password_conflict_hides_both() -> None:
    """A conflicting password is reported without either value."""
    error = load({"DATABASE_URL": URL, "SQL_PASSWORD": "another-secret"}).error()
    text = str(error)
    assert "differs from the password in DATABASE_URL" in text
    assert PASSWORD not in text
    assert "another-secret" not in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:pw9x@h/d", "scheme"),
        ("postgres://u:pw9x@h:99999/d", "port"),
    ],
)
def test_database_url_errors(url: str, message: str) -> None:
    """A bad DATABASE_URL is named without echoing the URL."""
    found = problems({"DATABASE_URL": url})
    assert message in found["DATABASE_URL"]
    assert "pw9x" not in found["DATABASE_URL"]


def test_database_url_socket_directory() -> None:
    """A percent-encoded socket directory keeps its case."""
    assert load({"DATABASE_URL": "postgresql://u@%2FRun%2Fpg/db"}).settings.host == "/Run/pg"


def test_database_url_with_sqlite_engine_conflicts() -> None:
    """DATABASE_URL with SQL_ENGINE=sqlite3 is a conflict."""
    found = problems({"DATABASE_URL": URL, "SQL_ENGINE": "django.db.backends.sqlite3"})
    assert "DATABASE_URL" in found


# --- properties ---


@given(
    host=st.text(max_size=300).filter(lambda s: "\x00" not in s),
    port=st.text(max_size=12).filter(lambda s: "\x00" not in s),
)
def test_any_host_or_port_gives_a_plan_or_problems(host: str, port: str) -> None:
    """Any SQL_HOST/SQL_PORT yields exactly one of: a plan with a valid port, or problems."""
    config = load({**BASE, "SQL_HOST": host, "SQL_PORT": port})
    if config.problems:
        assert config.plan is None
    else:
        assert config.plan is not None
        assert 1 <= config.settings.port <= 65535
        assert config.plan.libpq_params()["port"] == str(config.settings.port)


def test_url_warnings_reach_the_config() -> None:
    """An unknown DATABASE_URL parameter is a warning, not a problem; libpq's are kept."""
    config = load({"DATABASE_URL": "postgres://u:pw@db/app?connect_timeout=5&zz=x"})
    assert config.problems == ()
    assert any(w.startswith("DATABASE_URL:") and "zz" in w for w in config.warnings)
    assert config.settings.params == (("connect_timeout", "5"),)


def test_a_refused_url_still_registers_its_userinfo_as_secret() -> None:
    """A URL whose userinfo could not be split registers it, so it is withheld anywhere."""
    config = load({"DATABASE_URL": "postgres://u:pa/ss@w0rd@db/app"})
    assert any(p.variable == "DATABASE_URL" for p in config.problems)
    assert "pa/ss@w0rd" in config.secrets


@pytest.mark.parametrize(
    ("env", "leaked"),
    [
        (
            {"DATABASE_URL": "postgres://u:pw@h/db?password=hunter2", "SQL_DATABASE": "hunter2"},
            "hunter2",
        ),
        (
            {
                "DATABASE_URL": "postgres://h/db?password=hunter2&sslmode=bogus",
                "SQL_HOST": "hunter2",
            },
            "hunter2",
        ),
        (
            {
                "DATABASE_URL": "postgres://h/db?password=hunt%40er2&sslmode=x",
                "SQL_USER": "hunt@er2",
            },
            "hunt@er2",
        ),
    ],
)
def test_a_password_in_the_query_of_a_broken_url_is_a_secret(
    env: dict[str, str], leaked: str
) -> None:
    """A ?password= in a URL with problems is registered as a secret, raw and decoded."""
    config = load(env)
    assert config.problems
    assert leaked in config.secrets


def test_a_user_without_a_password_is_not_taken_for_one() -> None:
    """postgres://u@h/... with a problem: the user name is not registered as a secret."""
    config = load({"DATABASE_URL": "postgres://u@h/db?sslmode=bogus"})
    assert config.problems
    assert "u" not in config.secrets
