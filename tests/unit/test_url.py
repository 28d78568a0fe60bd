"""DATABASE_URL: parts as libpq and dj-database-url read them, problems that quote nothing."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight._url import (
    CHOICE_PARAMETERS,
    INTEGER_PARAMETERS,
    LIBPQ_PARAMETERS,
    NEWER_PARAMETERS,
    UrlParts,
    option_secrets,
    parse_database_url,
)

PASSWORD = "Zq8-pre'fl ight@:/%Secr3t"
PW = quote(PASSWORD, safe="")


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        (
            f"postgres://app:{PW}@db:5432/balancer?sslmode=require&sslrootcert=/ca.pem",
            UrlParts("db", 5432, "balancer", "app", PASSWORD, "require", "/ca.pem"),
        ),
        ("postgresql://db/app", UrlParts(host="db", database="app")),
        ("POSTGRES://db", UrlParts(host="db")),
        ("  postgres://db/app\n", UrlParts(host="db", database="app")),
        ("postgres://", UrlParts()),
        (
            "postgres://%2Fvar%2Frun%2Fpostgresql/app",
            UrlParts(host="/var/run/postgresql", database="app"),
        ),
        (
            "postgres:///app?host=/var/run/postgresql",
            UrlParts(host="/var/run/postgresql", database="app"),
        ),
        ("postgres://u@[::1]:5433/app", UrlParts(host="::1", port=5433, database="app", user="u")),
        ("postgres://[fe80::1%25eth0]/app", UrlParts(host="fe80::1%eth0", database="app")),
        (
            "postgres://%75ser:p%3Aw@h/d%2Fb",
            UrlParts(host="h", database="d/b", user="user", password="p:w"),
        ),
        ("postgres://u:p:w@h", UrlParts(host="h", user="u", password="p:w")),
        ("postgres://u:@h", UrlParts(host="h", user="u")),
        ("postgres://h:/app", UrlParts(host="h", database="app")),
        ("postgres://h:065535", UrlParts(host="h", port=65535)),
        (
            "postgres://h/app?port=6432&user=u&password=p%40w",
            UrlParts("h", 6432, "app", "u", "p@w"),
        ),
        ("postgres://h?dbname=other", UrlParts(host="h", database="other")),
        (
            "postgres://h/app?&sslmode=verify-full&",
            UrlParts(host="h", database="app", sslmode="verify-full"),
        ),
        (
            "postgres://h/db?application_name=a+b",
            UrlParts(host="h", database="db", params=(("application_name", "a+b"),)),
        ),
        ("postgres://h/db?sslmode=Require", UrlParts("h", None, "db", sslmode="require")),
        ("pgsql://h/db", UrlParts(host="h", database="db")),
        ("postgis://h/db", UrlParts(host="h", database="db", scheme="postgis")),
        (
            "postgres://h/db?currentSchema=my%20app",
            UrlParts("h", None, "db", params=(("options", "-c search_path=my\\ app"),)),
        ),
        (
            "postgres://h/db?options=-c%20search_path%3Dmyschema&sslcert=/c.crt&sslkey=/c.key",
            UrlParts(
                "h",
                None,
                "db",
                params=(
                    ("options", "-c search_path=myschema"),
                    ("sslcert", "/c.crt"),
                    ("sslkey", "/c.key"),
                ),
            ),
        ),
        ("sqlite://", UrlParts(database=":memory:", scheme="sqlite")),
        ("sqlite://:memory:", UrlParts(database=":memory:", scheme="sqlite")),
        ("sqlite:///db.sqlite3", UrlParts(database="db.sqlite3", scheme="sqlite")),
        (
            "sqlite:////var/lib/app/db.sqlite3",
            UrlParts(database="/var/lib/app/db.sqlite3", scheme="sqlite"),
        ),
        (
            "sqlite:///file:shared?mode=memory&cache=shared",
            UrlParts(database="file:shared?mode=memory&cache=shared", scheme="sqlite"),
        ),
    ],
)
def test_parts(url: str, parts: UrlParts) -> None:
    """Each part decoded as libpq and dj-database-url agree it should be."""
    result = parse_database_url(url)
    assert result.problems == ()
    assert result.value == parts


EMPTY = UrlParts()


@pytest.mark.parametrize(
    ("url", "problem", "parts"),
    [
        ("", "is empty", EMPTY),
        ("mysql://u:p@h/db", "the scheme: mysql:// is not one of postgres://", EMPTY),
        ("u:secretpw@h/db", "the scheme: the URL does not start with postgres://", EMPTY),
        ("sqlite://host/db.sqlite3", "a sqlite URL names no host", EMPTY),
        ("postgres://u:p\x00w@h/db", "contains a NUL character", EMPTY),
        # malformed userinfo: nothing parsed, nothing echoed
        ("postgres://u:p@ss@h/db", "percent-encode these characters in the password", EMPTY),
        ("postgres://u:pa/ss@h/db", "unambiguously", EMPTY),
        ("postgres://u:pa?ss@h/db", "unambiguously", EMPTY),
        ("postgres://u:pa#ss@h/db", "unambiguously", EMPTY),
        ("postgres://u:12/ss@h:5432/db", "unambiguously", EMPTY),
        ("postgres://u:a@b/c@h/db", "unambiguously", EMPTY),
        ("postgres://h/db?application_name=me@x", "@ as %40", EMPTY),
        # %00 in any field: the field is named, the value is not
        ("postgres://u:p%00w@h/db", "the password contains %00", UrlParts("h", None, "db", "u")),
        (
            "postgres://u%00x:p@h/db",
            "the user name contains %00",
            UrlParts("h", None, "db", None, "p"),
        ),
        ("postgres://h%00x/db", "the host contains %00", UrlParts(database="db")),
        ("postgres://h/d%00b", "the database name contains %00", UrlParts(host="h")),
        (
            "postgres://h/db?sslrootcert=%00",
            "parameter sslrootcert contains %00",
            UrlParts("h", None, "db"),
        ),
        ("postgres://h/db?a%00=1", "a parameter name contains %00", UrlParts("h", None, "db")),
        (
            "postgres://u:p%zzw@h/db",
            "the password has a '%' not followed by two hex",
            UrlParts("h", None, "db", "u"),
        ),
        ("postgres://u:p%FFw@h/db", "the password is not UTF-8", UrlParts("h", None, "db", "u")),
        # ports
        (
            "postgres://h:0/db",
            "the port: 0 is outside the port range 1-65535",
            UrlParts(host="h", database="db"),
        ),
        (
            "postgres://h:65536/db",
            "the port: 65536 is outside the port range 1-65535",
            UrlParts(host="h", database="db"),
        ),
        (
            "postgres://h:54x2/db",
            "the port: it is not a port number",
            UrlParts(host="h", database="db"),
        ),
        ("postgres://h:-1/db", "the port: it is not a port", UrlParts(host="h", database="db")),
        ("postgres://h:\u00b2/db", "the port: it is not a", UrlParts(host="h", database="db")),
        ("postgres://h/db?port=0", "the port: 0 is outside", UrlParts(host="h", database="db")),
        ("postgres://h$x/db", 'the host: "h$x" is not a valid host', UrlParts(database="db")),
        (
            "postgres://h/db?host=a:5432",
            'the host: "a:5432" includes a port',
            UrlParts("h", None, "db"),
        ),
        # hosts
        (
            "postgres://h1,h2:5432/db",
            "several hosts; the preflight checks exactly one",
            UrlParts(database="db"),
        ),
        ("postgres://h1:5432,h2:5432/db", "several hosts", UrlParts(database="db")),
        ("postgres://::1/db", "must be written in brackets", UrlParts(database="db")),
        ("postgres://[::1/db", "is not closed with ']'", UrlParts(database="db")),
        ("postgres://[::1]x/db", "only ':port' may follow", UrlParts(database="db")),
        ("postgres://[]/db", "the brackets hold no IPv6 address", UrlParts(database="db")),
        ("postgres://h/db?host=/tmp", "the host is given twice", UrlParts(host="h", database="db")),
        (
            "postgres://u:p@h/db?password=q",
            "the password is given twice",
            UrlParts("h", None, "db", "u", "p"),
        ),
        # query
        (
            "postgres://h/db?sslmode=require&sslmode=disable",
            "parameter sslmode is given more than once",
            UrlParts("h", None, "db", sslmode="require"),
        ),
        (
            "postgres://h/db?connect_timeout=5&connect_timeout=6",
            "parameter connect_timeout is given more than once",
            UrlParts("h", None, "db", params=(("connect_timeout", "5"),)),
        ),
        (
            "postgres://h/db?sslmode=required",
            'sslmode: "required" is not one of disable, allow, prefer, require, verify-ca, '
            "verify-full (did you mean require?)",
            UrlParts("h", None, "db"),
        ),
        (
            "postgres://h/db?currentSchema=s&options=-c%20x%3D1",
            "gives both currentSchema and options",
            UrlParts("h", None, "db", params=(("options", "-c x=1"),)),
        ),
        ("postgres://h/db?sslmode=", "is not one of disable", UrlParts("h", None, "db")),
        ("postgres://h/db?sslmode", "parameter sslmode has no '='", UrlParts("h", None, "db")),
        ("postgres://u:p@h/db#frag", "contains a '#'", UrlParts("h", None, "db", "u", "p")),
    ],
)
def test_problems(url: str, problem: str, parts: UrlParts) -> None:
    """Every problem names the field, never its value, and parts hold what is sound."""
    result = parse_database_url(url)
    assert len(result.problems) == 1
    assert result.problems[0].variable == "DATABASE_URL"
    assert problem in result.problems[0].message
    assert result.value == parts


@pytest.mark.parametrize("name", sorted(LIBPQ_PARAMETERS))
def test_every_libpq_parameter_is_kept(name: str) -> None:
    """Each libpq parameter in the query is kept, decoded; only one that needs a libpq
    newer than 15 gets a warning, naming the version."""
    value = "7" if name in INTEGER_PARAMETERS else CHOICE_PARAMETERS.get(name, ("a b",))[0]
    result = parse_database_url(f"postgres://h/db?{name}={quote(value)}&sslmode=disable")
    assert result.problems == ()
    if name in NEWER_PARAMETERS:
        (warning,) = result.warnings
        assert f"{name} (libpq {NEWER_PARAMETERS[name]})" in warning
    else:
        assert result.warnings == ()
    assert result.value == UrlParts("h", None, "db", sslmode="disable", params=((name, value),))


@pytest.mark.parametrize("name", ["sslpassword", "password", "oauth_client_secret", "zz"])
@pytest.mark.parametrize("equals", ["%3D", "%3d", "%253D", "%25253D"])
def test_an_encoded_equals_sign_never_shows_the_value(name: str, equals: str) -> None:
    """``?sslpassword%3Dsecret``: the problem names the parameter, never what follows '='."""
    for tail in ("", "=x", "&a=1&a=2"):
        result = parse_database_url(f"postgres://u@h/db?{name}{equals}Kq9secretvalue{tail}")
        said = [p.message for p in result.problems] + list(result.warnings)
        assert said
        assert all("Kq9secretvalue" not in m for m in said)
        assert any(name in m for m in said)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("SSLMODE=require", "sslmode"),
        ("SslMode=verify-full", "sslmode"),
        ("Port=6432", "port"),
        ("SSLROOTCERT=/ca.pem", "sslrootcert"),
        ("Options=-c%20x%3D1", "options"),
    ],
)
def test_a_known_parameter_in_another_case_is_a_problem(query: str, name: str) -> None:
    """``SSLMODE=require`` is refused, naming ``sslmode``: dropping it would weaken an
    explicit sslmode to the default (libpq itself refuses the name)."""
    result = parse_database_url(f"postgres://u@h/db?{query}")
    (problem,) = result.problems
    assert f"write {name}" in problem.message


@pytest.mark.parametrize(
    "name",
    [
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    ],
)
@pytest.mark.parametrize(
    ("value", "ok"),
    [("10", True), (" 7 ", True), ("-1", True), ("abc", False), ("yes", False), ("1.5", False)],
)
def test_integer_parameters_are_whole_numbers(name: str, value: str, ok: bool) -> None:
    """libpq refuses ``connect_timeout=abc`` at connection time (and the check would quietly
    use its own): a problem naming the parameter, at once."""
    result = parse_database_url(f"postgres://u@h/db?{name}={quote(value)}")
    if ok:
        assert result.problems == ()
        assert result.value.params == ((name, value),)
    else:
        (problem,) = result.problems
        assert problem.message.startswith(f"parameter {name}: ")
        assert "whole number" in problem.message


@pytest.mark.parametrize(
    "path", ["/app&sslpassword=x", "/app&sslmode=require", "/sslmode=require", "/app&Port=1"]
)
def test_parameters_without_the_question_mark_are_a_problem(path: str) -> None:
    """``/app&sslmode=require``: a '?' forgotten, not a database named so (whose name,
    echoed by the server's error, would carry an sslpassword along)."""
    result = parse_database_url(f"postgres://u@h{path}")
    (problem,) = result.problems
    assert "a '?' is missing" in problem.message
    assert "sslpassword=x" not in problem.message


def test_unknown_parameters_warn() -> None:
    """Parameters libpq does not know are a warning naming them, not a problem."""
    result = parse_database_url("postgres://h/db?zz=1&isolation_level=2&connect_timeout=3")
    assert result.problems == ()
    assert result.value.params == (("connect_timeout", "3"),)
    (warning,) = result.warnings
    assert warning.startswith("ignores parameters isolation_level, zz: they are not libpq")


# --- properties ------------------------------------------------------------------

# Userinfo is drawn with Cyrillic letters, which appear nowhere else in these URLs nor
# in any message, between the characters that break URLs: any leaked piece of it
# longer than one character shows up as a Cyrillic letter.
SECRET_LETTERS = "ЖЩЮЯФЦ"
BREAKERS = ["", "/", "?", "#", "@", ":", "%", "%00", "%2", "%FF", "&", "=", "[", "]", ",", " "]
SECRETS = st.lists(
    st.tuples(st.sampled_from(SECRET_LETTERS), st.sampled_from(BREAKERS)).map("".join),
    min_size=1,
    max_size=8,
).map("".join)
HOSTS = st.sampled_from(
    ["db", "h1,h2", "[::1]", "[::1", "::1", "%2Fvar%2Frun", "", "h%00", "balancer-postgres-rw"]
)
PORTS = st.sampled_from(["", ":", ":5432", ":0", ":65536", ":x", ":99999999999999"])
PARAMS = st.lists(
    st.sampled_from(
        [
            "sslmode=require",
            "sslmode=bogus",
            "sslmode",
            "host=/tmp",
            "port=0",
            "connect_timeout=5",
            "zz=1",
            "sslrootcert=%00",
            "a=%zz",
        ]
    ),
    max_size=4,
).map("&".join)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_any_text_never_raises(url: str) -> None:
    """No input raises; the result always has the documented shape."""
    result = parse_database_url(url)
    assert isinstance(result.value, UrlParts)
    assert all(isinstance(m, str) for m in result.warnings)
    assert all(p.variable == "DATABASE_URL" for p in result.problems)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["postgres://", "postgresql://", "Postgres://", "pg://", ""]),
    user=SECRETS,
    password=SECRETS,
    encode=st.booleans(),
    host=HOSTS,
    port=PORTS,
    path=st.sampled_from(["", "/", "/app", "/a@b", "/a%2Fb"]),
    params=PARAMS,
)
def test_messages_never_carry_userinfo(
    scheme: str,
    user: str,
    password: str,
    encode: bool,
    host: str,
    port: str,
    path: str,
    params: str,
) -> None:
    """Whatever the URL, no problem or warning quotes the user or the password."""
    if encode:
        user, password = quote(user, safe=""), quote(password, safe="")
    url = f"{scheme}{user}:{password}@{host}{port}{path}?{params}"
    result = parse_database_url(url)
    for message in [p.message for p in result.problems] + list(result.warnings):
        assert not set(message) & set(SECRET_LETTERS)
        assert url not in message


@settings(max_examples=200, deadline=None)
@given(
    user=st.text(min_size=1, max_size=20),
    password=st.text(min_size=1, max_size=40),
    database=st.text(min_size=1, max_size=20),
    port=st.integers(1, 65535),
)
def test_encoded_parts_round_trip(user: str, password: str, database: str, port: int) -> None:
    """Percent-encoded user, password and database come back exactly, or as a %00 problem."""
    url = f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@db:{port}/"
    result = parse_database_url(url + quote(database, safe=""))
    if "\x00" in user + password + database or any(
        "\ud800" <= c <= "\udfff" for c in user + password + database
    ):
        assert result.problems
        return
    assert result.problems == ()
    assert result.value == UrlParts("db", port, database or None, user, password)


def test_newer_parameters_are_libpq_parameters() -> None:
    """Every parameter with a version note is one the reader keeps."""
    assert NEWER_PARAMETERS.keys() <= LIBPQ_PARAMETERS


@pytest.mark.parametrize(
    ("options", "secrets"),
    [
        ("-c app.password=s1", ["s1"]),
        ("-c app.passwd=s1 -c search_path=x", ["s1"]),
        ("--vault.token=s1", ["s1"]),
        ("-c app.secret=a\\ b", ["a\\ b"]),
        ("-c pgcrypto.passphrase=s1", ["s1"]),
        ("-c app.api_key=s1", ["s1"]),
        ("-c app.apikey=s1", ["s1"]),
        ("-c app.private_key=s1", ["s1"]),
        ("-c app.access_key=s1", ["s1"]),
        ("-c app.db_pwd=s1", ["s1"]),
        ("-c app.credentials=s1", ["s1"]),
        ("-c search_path=app -c statement_timeout=5s", []),
        ("-c app.bypass_rls=on -c app.keepalive=1 -c app.monkey=x", []),
    ],
)
def test_option_secrets_by_setting_name(options: str, secrets: list[str]) -> None:
    """A -c setting named like a password, passphrase, secret, token, credential or an
    API/private/access key holds a secret; other settings stay readable."""
    assert option_secrets(options) == secrets


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in sorted(CHOICE_PARAMETERS.items()) for value in values],
)
def test_every_choice_libpq_takes_is_kept(name: str, value: str) -> None:
    """Each value libpq accepts for an enumerated parameter passes as it is."""
    result = parse_database_url(f"postgres://u@h/db?{name}={value}")
    assert result.problems == ()
    assert result.value.params == ((name, value),)


@pytest.mark.parametrize(
    "query",
    [
        "target_session_attrs=bogus",
        "target_session_attrs=Read-Write",
        "gssencmode=yes",
        "channel_binding=always",
        "sslnegotiation=tls",
        "load_balance_hosts=on",
        "sslcertmode=verify",
    ],
)
def test_a_value_libpq_refuses_is_a_problem_naming_the_parameter(query: str) -> None:
    """``target_session_attrs=bogus``: refused up front, naming the parameter and the
    values libpq takes, not at the first attempt with a hint about PG* variables."""
    name = query.partition("=")[0]
    (problem,) = parse_database_url(f"postgres://u@h/db?{query}").problems
    assert problem.message.startswith(f"parameter {name}: ")
    assert "is not one of" in problem.message
