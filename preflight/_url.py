"""``DATABASE_URL`` read the way libpq and dj-database-url both read it. Pure, stdlib only.

Schemes: ``postgres``, ``postgresql`` and ``pgsql`` (PostgreSQL), ``postgis`` (the same
server, Django's GIS engine) and ``sqlite`` (``sqlite://`` and ``sqlite://:memory:`` in
memory, ``sqlite:///relative.db``, ``sqlite:////absolute.db``, and ``sqlite:///file:...``
URIs kept whole).  Every libpq parameter in the query is kept (for the app's ``OPTIONS``
and for the check alike); ``currentSchema`` becomes ``options=-c search_path=...`` as
dj-database-url makes it.  Values are parsed by the same parsers as ``SQL_*``
(:mod:`._values`, :mod:`._hosts`).

Where libpq and dj-database-url would read a URL differently (an unencoded ``@``,
``/``, ``?`` or ``#`` in the password, an invalid ``%`` escape, a fragment), the URL is
a problem rather than a guess.  Problems name the part of the URL at fault; none ever
quotes the user, the password, a secret parameter or the raw URL, and problems that
concern the user information give no parsed parts at all, so nothing shifted out of a
password can be shown as a host or database name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._errors import Problem
from ._hosts import check_host
from ._result import Found
from ._values import parse_port, parse_sslmode, parse_whole_number, quote

SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "pgsql": "postgresql",
    "postgis": "postgis",
    "sqlite": "sqlite",
}
"""Each scheme this reads, and the engine it means (the GIS engine for ``postgis``)."""

LIBPQ_PARAMETERS = frozenset(
    {
        # libpq's connection keywords (PostgreSQL 18) other than the ones read as
        # fields (host, port, dbname, user, password, sslmode, sslrootcert)
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "replication",
        "require_auth",
        "requirepeer",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslnegotiation",
        "sslpassword",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)
"""Parameters kept as they are: the app's ``OPTIONS`` and the check's connection get them."""

NEWER_PARAMETERS = {
    "gssdelegation": 16,
    "load_balance_hosts": 16,
    "require_auth": 16,
    "sslcertmode": 16,
    "sslnegotiation": 17,
    "max_protocol_version": 18,
    "min_protocol_version": 18,
    "oauth_client_id": 18,
    "oauth_client_secret": 18,
    "oauth_issuer": 18,
    "oauth_scope": 18,
    "sslkeylogfile": 18,
}
"""Parameters that need a libpq newer than 15 (psycopg2-binary 2.9.x bundles 15 or 16):
the check's own libpq knows them, an older app's refuses the connection."""

SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret"})
"""Parameters whose value is a secret: never shown, only ``set``."""

_QUERY_FIELDS = {"host": "host", "dbname": "database", "user": "user", "password": "password"}
INTEGER_PARAMETERS = frozenset(
    {
        "connect_timeout",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "tcp_user_timeout",
    }
)
"""libpq's integer parameters: a value that is not a whole number is refused by libpq."""
CHOICE_PARAMETERS = {
    "channel_binding": ("disable", "prefer", "require"),
    "gssencmode": ("disable", "prefer", "require"),
    "load_balance_hosts": ("disable", "random"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": (
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ),
}
"""libpq's enumerated parameters and the values it takes (case-sensitive, as libpq
compares them): any other value libpq refuses at connection time."""
_KNOWN_NAMES = LIBPQ_PARAMETERS | _QUERY_FIELDS.keys() | {"sslmode", "sslrootcert", "port"}
_NAMES = {
    "host": "the host",
    "port": "the port",
    "database": "the database name",
    "user": "the user name",
    "password": "the password",
    "sslrootcert": "sslrootcert",
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a path like /app&sslmode=require: the query's '?' forgotten
_FORGOTTEN_QUESTION_MARK = re.compile(r"(?:^/|&)[A-Za-z_]+=")
# a setting in libpq's ``options`` whose name says it holds a secret: -c x.password=...
_OPTION_SECRET = re.compile(
    r"(?:password|passwd|passphrase|pwd|secret|token|credential"
    r"|(?:api|private|access)[_.-]?key)[^=\s]*=((?:\\.|\S)+)",
    re.I,
)
_PERCENT_ADVICE = (
    "percent-encode these characters in the password: @ as %40, / as %2F, ? as %3F, "
    "# as %23 and % as %25"
)
_SCHEME_LIST = "postgres://, postgresql://, pgsql://, postgis:// or sqlite://"
MEMORY = ":memory:"


class UrlParts(NamedTuple):
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None  # decoded
    sslmode: str | None = None
    sslrootcert: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # further libpq parameters, decoded, in order
    scheme: str = "postgresql"  # the engine: postgresql, postgis or sqlite


UrlResult = Found[UrlParts]


class _Decoded(NamedTuple):
    value: str | None
    problem: str | None


def _shown(name: str) -> str:
    """A parameter name or value as a message may show it: printable and short."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= 40 else text[:37] + "..."


def _shown_name(name: str) -> str:
    """A parameter name as a message may show it: a libpq keyword as it is, anything else
    cut after its keyword-like start (``sslpassword%3Dsecret`` carries the value along)."""
    head = _KEYWORD.match(name)
    if head is not None and head.end() == len(name):
        return _shown(name)
    return _shown(head.group(0) if head else "") + "... (the rest is not shown)"


def _decode(raw: str, field: str) -> _Decoded:
    """``raw`` percent-decoded as libpq does: strictly, refusing ``%00``."""
    if _ESCAPE.sub("", raw).count("%"):
        return _Decoded(None, f"{field} has a '%' not followed by two hex digits; write '%' as %25")
    data = bytearray()
    done = 0
    for match in _ESCAPE.finditer(raw):
        data += raw[done : match.start()].encode("utf-8", "surrogatepass")
        data.append(int(match.group(1), 16))
        done = match.end()
    data += raw[done:].encode("utf-8", "surrogatepass")
    if 0 in data:
        return _Decoded(None, f"{field} contains %00, which libpq refuses")
    try:
        return _Decoded(data.decode("utf-8"), None)
    except UnicodeDecodeError:
        return _Decoded(None, f"{field} is not UTF-8 text once percent-decoded")


def option_secrets(options: str) -> list[str]:
    """The values in a libpq ``options`` string that a setting's name marks as secret."""
    return [match.group(1) for match in _OPTION_SECRET.finditer(options)]


class _Reader:
    """Collects the fields, problems and warnings of one URL."""

    def __init__(self) -> None:
        self.found: dict[str, str | int] = {}
        self.params: dict[str, str] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def decoded(self, raw: str, field: str) -> str | None:
        value, problem = _decode(raw, field)
        if problem:
            self.problems.append(problem)
        return value or None

    def set(self, name: str, value: str | int | None, *, via_query: bool) -> None:
        if value is None:
            return
        if name in self.found:
            where = "as a query parameter" if via_query else "in the URL"
            self.problems.append(f"{_NAMES[name]} is given twice (again {where}); keep one")
            return
        self.found[name] = value

    def port(self, raw: str, *, via_query: bool) -> None:
        if not raw:
            return
        try:
            port = parse_port(raw, shown=False)
        except ValueError as exc:
            self.problems.append(f"the port: {exc}")
            return
        self.set("port", port, via_query=via_query)

    def host(self, raw: str) -> None:
        host = self.decoded(raw, "the host")
        if host is None:
            return
        problem = check_host(host)
        if problem is not None:
            self.problems.append(f"the host: {problem}")
            return
        self.set("host", host, via_query=False)

    def hostspec(self, spec: str) -> None:
        """``host[:port]``, ``[ipv6][:port]`` or a percent-encoded socket directory."""
        if "," in spec:
            self.problems.append(
                "the host: names several hosts; the preflight checks exactly one: "
                "give the host of the primary (for CloudNativePG, the -rw service)"
            )
            return
        port = ""
        if spec.startswith("["):
            close = spec.find("]")
            if close < 0:
                self.problems.append("the IPv6 address opened with '[' is not closed with ']'")
                return
            rest = spec[close + 1 :]
            if rest and not rest.startswith(":"):
                self.problems.append("only ':port' may follow the IPv6 address in brackets")
                return
            host, port = spec[1:close], rest[1:]
            if not host:
                self.problems.append("the brackets hold no IPv6 address")
        elif spec.count(":") > 1:
            self.problems.append("an IPv6 address must be written in brackets, like [::1]")
            return
        else:
            host, _, port = spec.partition(":")
        self.host(host)
        self.port(port, via_query=False)

    def query(self, query: str) -> None:
        seen: set[str] = set()
        unknown: list[str] = []
        for segment in query.split("&"):
            if not segment:
                continue
            raw_key, equals, raw_value = segment.partition("=")
            key = self.decoded(raw_key, "a parameter name")
            if key is None:
                continue
            if not equals:
                self.problems.append(f"parameter {_shown_name(key)} has no '=' and value")
                continue
            if key in seen:
                self.problems.append(f"parameter {_shown_name(key)} is given more than once")
                continue
            seen.add(key)
            value = self.decoded(raw_value, f"parameter {_shown_name(key)}")
            if key in LIBPQ_PARAMETERS:
                self.libpq(key, value or "")
            elif not self.recased(key) and not self.parameter(key, value):
                unknown.append(key)
        newer = sorted(k for k in self.params if k in NEWER_PARAMETERS)
        if newer:
            needs = ", ".join(f"{k} (libpq {NEWER_PARAMETERS[k]})" for k in newer)
            self.warnings.append(
                f"gives {needs}: an app whose driver bundles an older libpq (psycopg2-binary "
                "2.9.x has 15 or 16) refuses the connection, while the check's libpq accepts it"
            )
        if unknown:
            names = ", ".join(_shown_name(k) for k in sorted(unknown))
            self.warnings.append(
                f"ignores parameters {names}: they are not libpq parameters, which libpq "
                "would refuse; neither the app nor the check gets them"
            )

    def libpq(self, key: str, value: str) -> None:
        """Keep a libpq parameter whose value libpq would take: an integer one a whole
        number, an enumerated one one of its values."""
        if key in INTEGER_PARAMETERS:
            try:
                parse_whole_number(value)
            except ValueError as exc:
                self.problems.append(f"parameter {key}: {exc}")
                return
        choices = CHOICE_PARAMETERS.get(key)
        if choices is not None and value not in choices:
            self.problems.append(
                f"parameter {key}: {quote(value)} is not one of {', '.join(choices)} "
                "(libpq refuses it)"
            )
            return
        self.params[key] = value

    def recased(self, key: str) -> bool:
        """A libpq name in another case (``SSLMODE``) is a problem: libpq refuses it, and
        dropping it would quietly weaken an explicit sslmode to the default."""
        if key.lower() == key or key.lower() not in _KNOWN_NAMES:
            return False
        self.problems.append(
            f"parameter {_shown_name(key)}: libpq parameter names are lower-case "
            f"(libpq refuses this one); write {key.lower()}"
        )
        return True

    def parameter(self, key: str, value: str | None) -> bool:
        """Take one parameter read as a field; False when it is not one of them."""
        if key == "sslmode":
            try:
                self.found["sslmode"] = parse_sslmode(value or "")
            except ValueError as exc:
                self.problems.append(f"sslmode: {exc}")
        elif key == "sslrootcert":
            self.set("sslrootcert", value, via_query=True)
        elif key == "port":
            self.port(value or "", via_query=True)
        elif key == "currentSchema":
            self.params["currentSchema"] = value or ""
        elif key in _QUERY_FIELDS:
            if key == "host" and value is not None:
                problem = check_host(value)
                if problem is not None:
                    self.problems.append(f"the host: {problem}")
                    return True
            self.set(_QUERY_FIELDS[key], value, via_query=True)
        else:
            return False
        return True

    def schema(self) -> None:
        """dj-database-url's ``currentSchema``, as the ``options`` it stands for."""
        schema = self.params.pop("currentSchema", None)
        if schema is None:
            return
        if "options" in self.params:
            self.problems.append(
                "gives both currentSchema and options; put -c search_path=... in options alone"
            )
            return
        self.params["options"] = "-c search_path=" + schema.replace("\\", "\\\\").replace(
            " ", "\\ "
        )

    def result(self, scheme: str) -> UrlResult:
        self.schema()
        text = {k: v for k, v in self.found.items() if isinstance(v, str)}
        port = self.found.get("port")
        fields = ("host", "database", "user", "password", "sslmode", "sslrootcert")
        parts = UrlParts(
            port=port if isinstance(port, int) else None,
            params=tuple(self.params.items()),
            scheme=scheme,
            **{name: text.get(name) for name in fields},
        )
        return _found(parts, self.problems, self.warnings)


def _found(parts: UrlParts, problems: list[str], warnings: list[str]) -> UrlResult:
    return Found(parts, tuple(Problem("DATABASE_URL", m) for m in problems), tuple(warnings))


def _refuse(problem: str) -> UrlResult:
    return _found(UrlParts(), [problem], [])


def _sqlite(rest: str) -> UrlResult:
    """``sqlite://`` URLs: in memory, a relative or absolute file, or a ``file:`` URI."""
    if rest in ("", MEMORY, "/" + MEMORY):
        return _found(UrlParts(database=MEMORY, scheme="sqlite"), [], [])
    if not rest.startswith("/"):
        return _refuse(
            "the database file: a sqlite URL names no host; write sqlite:///relative.db, "
            "sqlite:////absolute/path.db or sqlite://:memory:"
        )
    path = rest[1:]
    if path.startswith("file:"):
        return _found(UrlParts(database=path, scheme="sqlite"), [], [])  # a URI, kept whole
    path, _, query = path.partition("?")
    reader = _Reader()
    name = reader.decoded(path, "the database file")
    warnings = []
    if query:
        warnings.append("ignores the query of a sqlite URL (write a file: URI to give options)")
    return _found(UrlParts(database=name or MEMORY, scheme="sqlite"), reader.problems, warnings)


def _scheme(url: str) -> tuple[str, str] | str:
    """The engine a URL's scheme names and the rest of the URL, or the problem."""
    if not url:
        return "is empty"
    if "\x00" in url:
        return "contains a NUL character"
    match = _SCHEME.match(url)
    if match is None:
        return f"the scheme: the URL does not start with {_SCHEME_LIST}"
    scheme = SCHEMES.get(match.group(1).lower())
    if scheme is None:
        return f"the scheme: {_shown(match.group(1))}:// is not one of {_SCHEME_LIST}"
    return scheme, url[match.end() :]


def parse_database_url(url: str) -> UrlResult:
    """Split a PostgreSQL or SQLite URL into its parts, problems and warnings."""
    split = _scheme(url.strip())
    if isinstance(split, str):
        return _refuse(split)
    scheme, rest = split
    if scheme == "sqlite":
        return _sqlite(rest)
    authority_end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    ats = rest.count("@")
    if ats > 1 or (ats == 1 and rest.index("@") > authority_end):
        # libpq takes the first '@' (unless a '/' comes before it), urllib the last
        # one before any '/', '?' or '#': the two would split the URL differently.
        return _refuse(
            "cannot be split into user, password and host unambiguously (an '@' too many, "
            f"or one after a '/', '?' or '#'); {_PERCENT_ADVICE}"
        )
    reader = _Reader()
    rest, hash_sign, _ = rest.partition("#")
    if hash_sign:
        reader.problems.append(
            "contains a '#', which libpq keeps and Django's URL parsers cut off; "
            "percent-encode it as %23"
        )
    authority, rest = rest[:authority_end], rest[authority_end:]
    userinfo, at, hostspec = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        reader.set("user", reader.decoded(user, "the user name"), via_query=False)
        if colon:
            reader.set("password", reader.decoded(password, "the password"), via_query=False)
    reader.hostspec(hostspec)
    path, _, query = rest.partition("?")
    if _FORGOTTEN_QUESTION_MARK.search(path):
        reader.problems.append(
            "the database name: holds parameters (name=value after '&' or at its start): "
            "a '?' is missing before them, as in /app?sslmode=require"
        )
    elif path.startswith("/"):
        reader.set("database", reader.decoded(path[1:], "the database name"), via_query=False)
    reader.query(query)
    return reader.result(scheme)
