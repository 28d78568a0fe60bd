"""The app's database settings: ``SQL_*`` and ``DATABASE_URL``, read once.

Pure but for two bounded file reads (``SQL_PASSWORD_FILE``, and ``/etc/resolv.conf``
in a pod).  Reading never raises: it returns the settings it could parse, every
problem found, and the secrets that output must never show.  The Django helper
uses this module alone (with the plan); it never reads ``PREFLIGHT_*``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import unquote

from ._cluster import cluster_domain, is_link_value, link_advice, service_links
from ._errors import Problem
from ._hosts import CLUSTER_DOMAIN, Kind, check_host, libpq_host, normalize_host
from ._result import Found
from ._values import VALUE_LIMIT, parse_port, parse_sslmode, quote

if TYPE_CHECKING:  # _url loads only when DATABASE_URL is set
    from ._url import UrlParts, UrlResult

POSTGRESQL_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}
)
POSTGRESQL_ENGINE = "django.db.backends.postgresql"
POSTGIS_ENGINE = "django.contrib.gis.db.backends.postgis"
SQLITE_ENGINE = "django.db.backends.sqlite3"
DEFAULT_PORT = 5432
# A password file larger than this is a mistake (a wrong mount, /dev/zero), not a password.
PASSWORD_FILE_LIMIT = 4096

VARIABLES = (
    "SQL_ENGINE",
    "SQL_HOST",
    "SQL_PORT",
    "SQL_DATABASE",
    "SQL_USER",
    "SQL_PASSWORD",
    "SQL_PASSWORD_FILE",
    "SQL_SSL_MODE",
    "SQL_SSL_ROOT_CERT",
    "SQL_CONNECTION_TYPE",
    "SQL_CLUSTER_DOMAIN",
    "DATABASE_URL",
)
# Variables whose value is the password, or holds it.
SECRET_VARIABLES = ("SQL_PASSWORD", "DATABASE_URL", "PGPASSWORD")

Engine = Literal["postgresql", "sqlite"]
Source = Literal["SQL_*", "DATABASE_URL"]
PasswordSource = Literal["SQL_PASSWORD", "SQL_PASSWORD_FILE", "DATABASE_URL"]


class Secret:
    """A value that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class DatabaseSettings(NamedTuple):
    """What the app's environment says about its database, validated."""

    engine: Engine
    host: str | None = None  # IPv6 without brackets, as libpq wants it
    port: int = DEFAULT_PORT
    database: str | None = None
    user: str | None = None
    password: Secret | None = None
    password_source: PasswordSource | None = None
    password_file: str | None = None
    sslmode: str | None = None  # explicit mode, or None for "choose by kind"
    sslrootcert: str | None = None
    connection_type: Kind | None = None
    source: Source = "SQL_*"
    params: tuple[tuple[str, str], ...] = ()  # further libpq parameters from DATABASE_URL
    gis: bool = False  # postgis:// (Django's GIS engine on the same server)
    cluster_domain: str = CLUSTER_DOMAIN
    from_url: frozenset[str] = frozenset()  # the SQL_* names whose value the URL gave


class SettingsRead(NamedTuple):
    """What one read of the environment found besides problems and warnings."""

    settings: DatabaseSettings
    secrets: tuple[str, ...]  # every text output must never show
    configured: bool  # False when no database variable is set at all


SettingsResult = Found[SettingsRead]


def read_password_file(path: str) -> str:
    """The secret in ``path`` without the trailing newline; ``ValueError`` says why not.

    Only a regular file is read (a FIFO or a device could block or never end), and
    at most :data:`PASSWORD_FILE_LIMIT` bytes of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        data = os.read(fd, PASSWORD_FILE_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > PASSWORD_FILE_LIMIT:
        raise ValueError(f"{path} is larger than {PASSWORD_FILE_LIMIT} bytes: not a password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _get(environ: Mapping[str, str], name: str, out: list[Problem]) -> str | None:
    """A variable's value; empty or blank counts as unset, and text must be UTF-8."""
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    if not _utf8(value):
        out.append(Problem(name, "is not valid UTF-8 text"))
        return None
    if len(value) > VALUE_LIMIT and name != "DATABASE_URL":
        out.append(Problem(name, f"is longer than {VALUE_LIMIT} characters"))
        return None
    return value


def _connection_type(text: str) -> Kind:
    value = text.strip().lower()
    try:
        return Kind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise ValueError(f"{quote(text)} is not one of {kinds}") from None


def _parse(name: str, raw: str | None, parse: object, out: list[Problem]) -> object:
    if raw is None:
        return None
    assert callable(parse)
    try:
        return parse(raw)
    except ValueError as exc:
        out.append(Problem(name, str(exc)))
        return None


def _plain_values(
    environ: Mapping[str, str], out: list[Problem], *, url: bool
) -> dict[str, object]:
    """The ``SQL_*`` values other than the password, parsed.  With ``DATABASE_URL`` the
    source (``url``), a service-link ``SQL_PORT`` is ignored (the link warning says so):
    the app reads its port from the URL."""
    values: dict[str, object] = {}
    host = _get(environ, "SQL_HOST", out)
    if host is not None:
        problem = check_host(host)
        if problem:
            out.append(Problem("SQL_HOST", problem))
        values["SQL_HOST"] = libpq_host(host)
    port = _get(environ, "SQL_PORT", out)
    if port is not None and is_link_value(port):
        if not url:
            out.append(Problem("SQL_PORT", f"is {quote(port.strip())}, {link_advice('SQL')}"))
        port = None
    values["SQL_PORT"] = _parse("SQL_PORT", port, parse_port, out)
    for name in ("SQL_DATABASE", "SQL_USER", "SQL_SSL_ROOT_CERT"):
        raw = _get(environ, name, out)
        values[name] = raw.strip() if raw is not None else None
    values["SQL_SSL_MODE"] = _parse(
        "SQL_SSL_MODE", _get(environ, "SQL_SSL_MODE", out), parse_sslmode, out
    )
    values["SQL_CONNECTION_TYPE"] = _parse(
        "SQL_CONNECTION_TYPE", _get(environ, "SQL_CONNECTION_TYPE", out), _connection_type, out
    )
    return values


def looks_like_path(value: str) -> bool:
    """A ``*_FILE`` value that could name a file: a path with a ``/`` and no whitespace
    inside.  Anything else may be the secret itself, pasted into the wrong variable."""
    text = value.strip()
    return "/" in text and not any(c.isspace() for c in text) and "://" not in text


def _shown_path(path: str) -> bool:
    """A ``*_FILE`` value that is a path for sure: the file exists, or (absolute, so not
    relative to a working directory) its directory does.  A base64 password such as
    ``Zm9v/YmFy+cXV4=`` looks like a path; it names nothing that exists."""
    if os.path.lexists(path):
        return True
    parent = os.path.dirname(path)
    return os.path.isabs(path) and parent not in ("", "/") and os.path.isdir(parent)


def _password(
    environ: Mapping[str, str], out: list[Problem], secrets: list[str]
) -> tuple[str | None, str | None, PasswordSource | None]:
    """The password, the file it came from, and which variable gave it."""
    password = environ.get("SQL_PASSWORD") or None
    if password is not None and not _utf8(password):
        out.append(Problem("SQL_PASSWORD", "is not valid UTF-8 text"))
        password = None
    path = _get(environ, "SQL_PASSWORD_FILE", out)
    if path is None:
        return password, None, "SQL_PASSWORD" if password is not None else None
    if not looks_like_path(path):
        secrets.extend({path, path.strip()})
        out.append(
            Problem(
                "SQL_PASSWORD_FILE",
                "does not look like a file path (its value is not shown: it may be the "
                "password itself); set it to the path of the mounted secret file, like "
                "/run/secrets/db-password, or put the password in SQL_PASSWORD",
            )
        )
        return password, None, "SQL_PASSWORD" if password is not None else None
    if password is not None:
        out.append(Problem("SQL_PASSWORD_FILE", "is set together with SQL_PASSWORD; set one"))
        return password, None, "SQL_PASSWORD"
    path = path.strip()
    if not _shown_path(path):
        secrets.extend({path, environ["SQL_PASSWORD_FILE"]})
        out.append(
            Problem(
                "SQL_PASSWORD_FILE",
                "names no file that exists, nor a directory that does (its value is not "
                "shown: a password can contain '/'); set it to the path of the mounted "
                "secret file, like /run/secrets/db-password",
            )
        )
        return None, None, None
    try:
        password = read_password_file(path)
    except ValueError as exc:
        out.append(Problem("SQL_PASSWORD_FILE", str(exc)))
        return None, None, None
    secrets.append(password)
    return password, path, "SQL_PASSWORD_FILE"


def _links(environ: Mapping[str, str], out: list[Problem]) -> list[str]:
    """One warning for the service-link variables a Service named ``sql`` injected."""
    names = service_links(environ, "SQL")
    if not names or any(p.variable == "SQL_PORT" and "service link" in p.message for p in out):
        return []
    return [f"{', '.join(names)} come from {link_advice('SQL')}; they are ignored"]


def _cluster_domain(environ: Mapping[str, str], out: list[Problem]) -> str:
    domain = cluster_domain(environ)
    if environ.get("SQL_CLUSTER_DOMAIN", "").strip():
        problem = check_host(domain)
        if problem is not None or normalize_host(domain) != domain or "/" in domain:
            out.append(Problem("SQL_CLUSTER_DOMAIN", f"{quote(domain)} is not a domain name"))
            return CLUSTER_DOMAIN
    return domain


def _sqlite(
    environ: Mapping[str, str], url: str | None, out: list[Problem], secrets: list[str]
) -> DatabaseSettings:
    """SQLite from ``SQL_ENGINE``/``SQL_DATABASE`` or from a ``sqlite://`` URL."""
    name = _get(environ, "SQL_DATABASE", out)
    name = name and name.strip()
    if url is not None:
        from ._url import parse_database_url

        found = parse_database_url(url)
        out.extend(found.problems)
        secrets.extend(_url_secrets(url, found))
        if found.value.scheme != "sqlite":
            out.append(Problem("DATABASE_URL", "is set but SQL_ENGINE is sqlite3; unset one"))
        elif name and name != found.value.database:
            out.append(
                Problem(
                    "SQL_DATABASE",
                    f"{quote(name)} conflicts with {quote(found.value.database)} in DATABASE_URL",
                )
            )
        else:
            name = found.value.database
    return DatabaseSettings(engine="sqlite", database=name, source=_source(url))


def _source(url: str | None) -> Source:
    return "SQL_*" if url is None else "DATABASE_URL"


def _sqlite_url(url: str | None) -> bool:
    return url is not None and url.strip().lower().startswith("sqlite:")


def _engine(raw: str | None, url: str | None, out: list[Problem]) -> str:
    engine = raw.strip() if raw else POSTGRESQL_ENGINE
    if engine not in POSTGRESQL_ENGINES | {SQLITE_ENGINE, POSTGIS_ENGINE}:
        out.append(
            Problem(
                "SQL_ENGINE",
                f"{quote(engine)} is not supported; use {POSTGRESQL_ENGINE} "
                f"(or {SQLITE_ENGINE}, which has no server to check)",
            )
        )
    if raw and _sqlite_url(url) and engine != SQLITE_ENGINE:
        out.append(Problem("SQL_ENGINE", f"is {quote(engine)} but DATABASE_URL is sqlite://"))
    return SQLITE_ENGINE if _sqlite_url(url) else engine


def read_settings(environ: Mapping[str, str]) -> SettingsResult:
    """Read ``SQL_*`` and ``DATABASE_URL`` once: settings, every problem, the secrets."""
    out: list[Problem] = []
    secrets = [environ[n] for n in SECRET_VARIABLES if environ.get(n)]
    if environ.get("PGOPTIONS"):  # -c app.password=...: a secret as in the URL's options
        from ._url import option_secrets

        secrets += option_secrets(environ["PGOPTIONS"])
    configured = any(environ.get(n, "").strip() for n in VARIABLES)
    url = _get(environ, "DATABASE_URL", out)
    engine = _engine(_get(environ, "SQL_ENGINE", out), url, out)
    if engine == SQLITE_ENGINE:
        settings = _sqlite(environ, url, out, secrets)
        return Found(SettingsRead(settings, tuple(dict.fromkeys(secrets)), configured), tuple(out))

    values = _plain_values(environ, out, url=url is not None)
    password, password_file, origin = _password(environ, out, secrets)
    values["SQL_PASSWORD"] = password
    connection_type = values.pop("SQL_CONNECTION_TYPE")
    warnings = _links(environ, out)
    parts = None
    from_url: set[str] = set()
    if url is not None:
        before = {name for name, value in values.items() if value is not None}
        parts, origin = _merge_url(url, values, origin, secrets, out, warnings)
        from_url = {name for name, value in values.items() if value is not None} - before
    _require(values, parts, out)

    password_value = values.get("SQL_PASSWORD")
    settings = DatabaseSettings(
        engine="postgresql",
        host=_str(values.get("SQL_HOST")),
        port=int(str(values.get("SQL_PORT") or DEFAULT_PORT)),
        database=_str(values.get("SQL_DATABASE")),
        user=_str(values.get("SQL_USER")),
        password=Secret(str(password_value)) if password_value is not None else None,
        password_source=origin,
        password_file=password_file if origin == "SQL_PASSWORD_FILE" else None,
        sslmode=_str(values.get("SQL_SSL_MODE")),
        sslrootcert=_str(values.get("SQL_SSL_ROOT_CERT")),
        connection_type=connection_type if isinstance(connection_type, Kind) else None,
        source=_source(url),
        params=parts.params if parts is not None else (),
        gis=engine == POSTGIS_ENGINE or (parts is not None and parts.scheme == "postgis"),
        cluster_domain=_cluster_domain(environ, out),
        from_url=frozenset(from_url),
    )
    read = SettingsRead(settings, tuple(dict.fromkeys(secrets)), configured)
    return Found(read, tuple(out), tuple(warnings))


_REQUIRED = (
    ("SQL_HOST", "the database host", "host; give it after '@' (or as ?host=)"),
    ("SQL_DATABASE", "the database to connect to", "database name; give it as the path"),
    ("SQL_USER", "the role to log in as", "user name; give it before '@'"),
)


def _require(values: dict[str, object], parts: UrlParts | None, out: list[Problem]) -> None:
    """A problem for each missing value, naming the URL part when a URL is in use."""
    url_faulty = any(p.variable == "DATABASE_URL" for p in out)  # its problems say enough
    for name, what, url_part in _REQUIRED:
        if values.get(name) is not None or any(p.variable == name for p in out):
            continue
        if parts is None:
            out.append(Problem(name, f"is not set; a PostgreSQL engine needs {what}"))
        elif not url_faulty:
            out.append(Problem("DATABASE_URL", f"has no {url_part}"))


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _merge_url(
    url: str,
    values: dict[str, object],
    origin: PasswordSource | None,
    secrets: list[str],
    out: list[Problem],
    warnings: list[str],
) -> tuple[UrlParts, PasswordSource | None]:
    """Fill ``values`` from the URL; a value that contradicts ``SQL_*`` is a problem."""
    from ._url import parse_database_url

    result = parse_database_url(url)
    out.extend(result.problems)
    warnings.extend(f"DATABASE_URL: {message}" for message in result.warnings)
    secrets.extend(_url_secrets(url, result))
    parts = result.value
    if parts.scheme == "sqlite":
        out.append(Problem("DATABASE_URL", "is sqlite:// but SQL_ENGINE names PostgreSQL"))
    from_url: dict[str, object] = {
        "SQL_HOST": parts.host and libpq_host(parts.host),
        "SQL_PORT": parts.port,
        "SQL_DATABASE": parts.database,
        "SQL_USER": parts.user,
        "SQL_PASSWORD": parts.password,
        "SQL_SSL_MODE": parts.sslmode,
        "SQL_SSL_ROOT_CERT": parts.sslrootcert,
    }
    for name, theirs in from_url.items():
        if theirs is None:
            continue
        mine = values.get(name)
        if mine is None:
            values[name] = theirs
            if name == "SQL_PASSWORD":
                origin = "DATABASE_URL"
        elif not _same(name, mine, theirs):
            if name == "SQL_PASSWORD":
                out.append(Problem(origin or name, "differs from the password in DATABASE_URL"))
            else:
                out.append(
                    Problem(name, f"{quote(mine)} conflicts with {quote(theirs)} in DATABASE_URL")
                )
    return parts, origin


def _url_secrets(url: str, result: UrlResult) -> list[str]:
    """The URL's password and secret parameters; for a URL with problems, also whatever
    may hold one.

    A URL that could not be parsed cleanly may carry its password where the parser
    gave up: in the user:password part or in a ``password=`` parameter.  Each such
    text, raw and decoded, is a secret, so no problem message can echo it.
    """
    from ._url import SECRET_PARAMETERS, option_secrets

    parts = result.value
    found = [parts.password] if parts.password else []
    for name, value in parts.params:
        if name in SECRET_PARAMETERS:
            found.append(value)
        elif name == "options":
            found += option_secrets(value)
    if result.problems:
        rest = url.partition("://")[2]
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            found += [userinfo, userinfo.partition(":")[2], userinfo.rpartition(":")[2]]
        secret = "|".join(sorted(SECRET_PARAMETERS))
        for match in re.finditer(rf"(?:^|[?&])(?:{secret})=([^&#]*)", rest, re.IGNORECASE):
            # where the parser gave up, the value may end at any URL delimiter after it
            for value in {match.group(1), re.split(r"[:/@?\[\]]", match.group(1))[0]}:
                found += [value, unquote(value)]
    return sorted(set(found) - {""})


def _same(name: str, mine: object, theirs: object) -> bool:
    if name == "SQL_HOST":
        return normalize_host(str(mine)) == normalize_host(str(theirs))
    return mine == theirs


def password_now(settings: DatabaseSettings) -> Secret | None:
    """The password now: a mounted secret file is read again (it may be rotated)."""
    if settings.password_file is not None:
        try:
            return Secret(read_password_file(settings.password_file))
        except ValueError:
            return settings.password
    return settings.password
