"""``DATABASE_URL`` read the way libpq and dj-database-url both read it. Pure, stdlib only.

Where the two would read a URL differently (an unencoded ``@``, ``/``, ``?`` or ``#``
in the password, an invalid ``%`` escape, a fragment), the URL is a problem rather
than a guess. No problem or warning ever quotes the user, the password or the raw
URL; problems that concern the user information give no parsed parts at all, so
nothing shifted out of a password can be shown as a host or database name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SCHEMES = ("postgres", "postgresql")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

PASSED_THROUGH = frozenset(
    {
        # what dj-database-url hands on to the driver; the check does not use them
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "fallback_application_name",
        "gssencmode",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "options",
        "sslcert",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslpassword",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)
"""Parameters accepted and ignored, with a warning naming them."""

_QUERY_FIELDS = {"host": "host", "dbname": "database", "user": "user", "password": "password"}
_NAMES = {
    "host": "the host",
    "port": "the port",
    "database": "the database name",
    "user": "the user name",
    "password": "the password",
    "sslrootcert": "sslrootcert",
}
_MODES = ", ".join(SSL_MODES)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT = re.compile(r"[0-9]{1,10}")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PERCENT_ADVICE = (
    "percent-encode these characters in the password: @ as %40, / as %2F, ? as %3F, "
    "# as %23 and % as %25"
)


class UrlParts(NamedTuple):
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None  # decoded
    sslmode: str | None = None
    sslrootcert: str | None = None


class UrlResult(NamedTuple):
    parts: UrlParts
    problems: tuple[str, ...] = ()  # each a message for DATABASE_URL; never quoting userinfo
    warnings: tuple[str, ...] = ()  # e.g. parameters passed over


class _Decoded(NamedTuple):
    value: str | None
    problem: str | None


def _shown(name: str) -> str:
    """A parameter name or value as a message may show it: printable and short."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= 40 else text[:37] + "..."


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


class _Reader:
    """Collects the fields, problems and warnings of one URL."""

    def __init__(self) -> None:
        self.found: dict[str, str | int] = {}
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
        if not _PORT.fullmatch(raw):
            self.problems.append("the port is not a number in 1-65535")
        elif not 1 <= int(raw) <= 65535:
            self.problems.append(
                f"port {int(raw)} is outside 1-65535 (leave the port out for 5432)"
            )
        else:
            self.set("port", int(raw), via_query=via_query)

    def hostspec(self, spec: str) -> None:
        """``host[:port]``, ``[ipv6][:port]`` or a percent-encoded socket directory."""
        if "," in spec:
            self.problems.append(
                "names several hosts; the preflight checks exactly one: "
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
        self.set("host", self.decoded(host, "the host"), via_query=False)
        self.port(port, via_query=False)

    def query(self, query: str) -> None:
        seen: set[str] = set()
        passed: list[str] = []
        unknown: list[str] = []
        for segment in query.split("&"):
            if not segment:
                continue
            raw_key, equals, raw_value = segment.partition("=")
            key = self.decoded(raw_key, "a parameter name")
            if key is None:
                continue
            if not equals:
                self.problems.append(f"parameter {_shown(key)} has no '=' and value")
                continue
            if key in seen:
                self.problems.append(f"parameter {_shown(key)} is given more than once")
                continue
            seen.add(key)
            value = self.decoded(raw_value, f"parameter {_shown(key)}")
            if key in PASSED_THROUGH:
                passed.append(key)
            elif not self.parameter(key, value):
                unknown.append(key)
        if passed:
            names = ", ".join(sorted(passed))
            self.warnings.append(
                f"passes over {names}: the app still uses them; the check does not need them"
            )
        if unknown:
            names = ", ".join(_shown(k) for k in sorted(unknown))
            self.warnings.append(f"ignores unknown parameters {names}; libpq may refuse them")

    def parameter(self, key: str, value: str | None) -> bool:
        """Take one parameter the check uses; False when it is not one of them."""
        if key == "sslmode":
            self.sslmode(value or "")
        elif key == "sslrootcert":
            self.set("sslrootcert", value, via_query=True)
        elif key == "port":
            self.port(value or "", via_query=True)
        elif key in _QUERY_FIELDS:
            self.set(_QUERY_FIELDS[key], value, via_query=True)
        else:
            return False
        return True

    def sslmode(self, value: str) -> None:
        if value in SSL_MODES:
            self.found["sslmode"] = value
            return
        message = f'sslmode "{_shown(value)}" is not one of {_MODES}'
        import difflib  # only on this error path

        close = difflib.get_close_matches(value.strip().lower(), SSL_MODES, n=1)
        if close:
            message += f"; did you mean {close[0]}?"
        self.problems.append(message)

    def result(self) -> UrlResult:
        text = {k: v for k, v in self.found.items() if isinstance(v, str)}
        port = self.found.get("port")
        parts = UrlParts(
            port=port if isinstance(port, int) else None,
            **{name: text.get(name) for name in UrlParts._fields if name != "port"},
        )
        return UrlResult(parts, tuple(self.problems), tuple(self.warnings))


def _refuse(problem: str) -> UrlResult:
    return UrlResult(UrlParts(), (problem,), ())


def parse_database_url(url: str) -> UrlResult:
    """Split a ``postgres://`` or ``postgresql://`` URL into its parts and problems."""
    url = url.strip()
    if not url:
        return _refuse("is empty")
    if "\x00" in url:
        return _refuse("contains a NUL character")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _refuse("does not start with postgres:// or postgresql://")
    if scheme.group(1).lower() not in SCHEMES:
        return _refuse(f"scheme {_shown(scheme.group(1))} is not postgres:// or postgresql://")
    rest = url[scheme.end() :]
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
    if path.startswith("/"):
        reader.set("database", reader.decoded(path[1:], "the database name"), via_query=False)
    reader.query(query)
    return reader.result()
