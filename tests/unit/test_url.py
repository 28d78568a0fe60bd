"""DATABASE_URL: parts as libpq and dj-database-url read them, problems that quote nothing."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight._url import PASSED_THROUGH, UrlParts, parse_database_url

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
        ("postgres://h/db?application_name=a+b", UrlParts(host="h", database="db")),
    ],
)
def test_parts(url: str, parts: UrlParts) -> None:
    """Each part decoded as libpq and dj-database-url agree it should be."""
    result = parse_database_url(url)
    assert result.problems == ()
    assert result.parts == parts


EMPTY = UrlParts()


@pytest.mark.parametrize(
    ("url", "problem", "parts"),
    [
        ("", "is empty", EMPTY),
        ("mysql://u:p@h/db", "scheme mysql is not postgres://", EMPTY),
        ("u:secretpw@h/db", "does not start with postgres://", EMPTY),
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
        ("postgres://h:0/db", "port 0 is outside 1-65535", UrlParts(host="h", database="db")),
        (
            "postgres://h:65536/db",
            "port 65536 is outside 1-65535",
            UrlParts(host="h", database="db"),
        ),
        ("postgres://h:54x2/db", "the port is not a number", UrlParts(host="h", database="db")),
        ("postgres://h:-1/db", "the port is not a number", UrlParts(host="h", database="db")),
        ("postgres://h:\u00b2/db", "the port is not a number", UrlParts(host="h", database="db")),
        ("postgres://h/db?port=0", "port 0 is outside", UrlParts(host="h", database="db")),
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
            UrlParts("h", None, "db"),
        ),
        (
            "postgres://h/db?sslmode=required",
            'sslmode "required" is not one of disable, allow, prefer, require, verify-ca, '
            "verify-full; did you mean require?",
            UrlParts("h", None, "db"),
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
    assert problem in result.problems[0]
    assert result.parts == parts


@pytest.mark.parametrize("name", sorted(PASSED_THROUGH))
def test_passed_through_parameters_warn_not_fail(name: str) -> None:
    """Parameters dj-database-url hands to the driver are accepted with a warning."""
    result = parse_database_url(f"postgres://h/db?{name}=1&sslmode=disable")
    assert result.problems == ()
    assert result.parts == UrlParts("h", None, "db", sslmode="disable")
    assert len(result.warnings) == 1
    assert name in result.warnings[0]


def test_unknown_parameters_warn() -> None:
    """Unknown parameters are a warning naming them, not a problem."""
    result = parse_database_url("postgres://h/db?currentSchema=x&zz=1&connect_timeout=3")
    assert result.problems == ()
    assert result.warnings == (
        "passes over connect_timeout: the app still uses them; the check does not need them",
        "ignores unknown parameters currentSchema, zz; libpq may refuse them",
    )


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
    assert isinstance(result.parts, UrlParts)
    assert all(isinstance(m, str) for m in result.problems + result.warnings)


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
    for message in result.problems + result.warnings:
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
    assert result.parts == UrlParts("db", port, database or None, user, password)
