"""The app's database settings: ``SQL_*`` and ``DATABASE_URL``, read once.

Pure but for one bounded file read (``SQL_PASSWORD_FILE``).  Reading never
raises: it returns the settings it could parse, every problem found, and the
secrets that output must never show.  The Django helper uses this module
alone (with the plan); it never reads ``PREFLIGHT_*``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import unquote

from ._errors import Problem
from ._hosts import Kind, normalize_host, parse_ip
from ._values import VALUE_LIMIT, parse_port, parse_sslmode, quote

if TYPE_CHECKING:  # _url loads only when DATABASE_URL is set
    from ._url import UrlResult

POSTGRESQL_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}
)
POSTGRESQL_ENGINE = "django.db.backends.postgresql"
SQLITE_ENGINE = "django.db.backends.sqlite3"
DEFAULT_PORT = 5432
# A password file larger than this is a mistake (a wrong mount, /dev/zero), not a password.
PASSWORD_FILE_LIMIT = 4096
SOCKET_PATH_LIMIT = 108

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


class SettingsResult(NamedTuple):
    """Everything one read of the environment found."""

    settings: DatabaseSettings
    problems: tuple[Problem, ...]
    secrets: tuple[str, ...]
    configured: bool  # False when no database variable is set at all
    warnings: tuple[str, ...] = ()


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


def check_host(host: str) -> str | None:
    """What is wrong with a ``SQL_HOST`` value, or None when it is usable."""
    raw = host.strip()
    if "://" in raw:
        return (
            "looks like a URL; set SQL_HOST to the host name alone, or put the whole "
            "URL in DATABASE_URL"
        )
    if "," in raw:
        return f"{quote(raw)} lists several hosts; the preflight checks exactly one host"
    if raw.startswith("/"):
        # The socket file is <dir>/.s.PGSQL.<port>, in a sun_path of 108 bytes.
        if len(raw.encode()) + len("/.s.PGSQL.65535") >= SOCKET_PATH_LIMIT:
            return (
                "the socket directory is longer than a Unix socket path allows "
                f"({SOCKET_PATH_LIMIT} bytes with the file name)"
            )
        return None
    name = normalize_host(raw)
    if parse_ip(name) is not None:
        return None
    head, sep, tail = raw.rpartition(":")
    if sep and tail.isdigit():
        bare = head[1:-1] if head.startswith("[") and head.endswith("]") else head
        return f"{quote(raw)} includes a port; set SQL_HOST={bare} and SQL_PORT={tail}"
    if "@" in raw:
        return "contains '@'; set the user in SQL_USER and the host name alone in SQL_HOST"
    label = r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$"
    if len(name) > 253 or not all(re.match(label, part) for part in name.split(".")):
        return f"{quote(raw)} is not a valid host name, IP address or socket directory"
    return None


def _libpq_host(host: str) -> str:
    """The host as libpq takes it: no brackets around IPv6, no surrounding space, and no
    trailing dot after an IP address (libpq would look that up as a name)."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith(".") and parse_ip(name[:-1]) is not None:
        name = name[:-1]
    return name


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


def _plain_values(environ: Mapping[str, str], out: list[Problem]) -> dict[str, object]:
    """The ``SQL_*`` values other than the password, parsed."""
    values: dict[str, object] = {}
    host = _get(environ, "SQL_HOST", out)
    if host is not None:
        problem = check_host(host)
        if problem:
            out.append(Problem("SQL_HOST", problem))
        values["SQL_HOST"] = _libpq_host(host)
    values["SQL_PORT"] = _parse("SQL_PORT", _get(environ, "SQL_PORT", out), parse_port, out)
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
    if password is not None:
        out.append(Problem("SQL_PASSWORD_FILE", "is set together with SQL_PASSWORD; set one"))
        return password, None, "SQL_PASSWORD"
    path = path.strip()
    try:
        password = read_password_file(path)
    except ValueError as exc:
        out.append(Problem("SQL_PASSWORD_FILE", str(exc)))
        return None, None, None
    secrets.append(password)
    return password, path, "SQL_PASSWORD_FILE"


def read_settings(environ: Mapping[str, str]) -> SettingsResult:
    """Read ``SQL_*`` and ``DATABASE_URL`` once: settings, every problem, the secrets."""
    out: list[Problem] = []
    secrets = [environ[n] for n in SECRET_VARIABLES if environ.get(n)]
    configured = any(environ.get(n, "").strip() for n in VARIABLES)
    raw_engine = _get(environ, "SQL_ENGINE", out)
    engine_name = raw_engine.strip() if raw_engine else POSTGRESQL_ENGINE
    url = _get(environ, "DATABASE_URL", out)

    if engine_name == SQLITE_ENGINE:
        if url is not None:
            out.append(Problem("DATABASE_URL", "is set but SQL_ENGINE is sqlite3; unset one"))
        name = _get(environ, "SQL_DATABASE", out)
        settings = DatabaseSettings(engine="sqlite", database=name and name.strip())
        return SettingsResult(settings, tuple(out), tuple(secrets), configured)
    if engine_name not in POSTGRESQL_ENGINES:
        out.append(
            Problem(
                "SQL_ENGINE",
                f"{quote(engine_name)} is not supported; use {POSTGRESQL_ENGINE} "
                f"(or {SQLITE_ENGINE}, which has no server to check)",
            )
        )

    warnings: list[str] = []
    values = _plain_values(environ, out)
    password, password_file, origin = _password(environ, out, secrets)
    values["SQL_PASSWORD"] = password
    connection_type = values.pop("SQL_CONNECTION_TYPE")

    source: Source = "SQL_*"
    if url is not None:
        source = "DATABASE_URL"
        origin = _merge_url(url, values, origin, secrets, out, warnings)

    for name, what in (
        ("SQL_HOST", "the database host"),
        ("SQL_DATABASE", "the database to connect to"),
        ("SQL_USER", "the role to log in as"),
    ):
        if values.get(name) is None and all(p.variable != name for p in out):
            out.append(Problem(name, f"is not set; a PostgreSQL engine needs {what}"))

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
        source=source,
    )
    return SettingsResult(
        settings, tuple(out), tuple(dict.fromkeys(secrets)), configured, tuple(warnings)
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _merge_url(
    url: str,
    values: dict[str, object],
    origin: PasswordSource | None,
    secrets: list[str],
    out: list[Problem],
    warnings: list[str],
) -> PasswordSource | None:
    """Fill ``values`` from the URL; a value that contradicts ``SQL_*`` is a problem."""
    from ._url import parse_database_url

    result = parse_database_url(url)
    out.extend(Problem("DATABASE_URL", message) for message in result.problems)
    warnings.extend(f"DATABASE_URL: {message}" for message in result.warnings)
    secrets.extend(_url_secrets(url, result))
    parts = result.parts
    sslmode = parts.sslmode  # the URL parser admits only a valid mode, in its canonical form
    from_url: dict[str, object] = {
        "SQL_HOST": parts.host,
        "SQL_PORT": parts.port,
        "SQL_DATABASE": parts.database,
        "SQL_USER": parts.user,
        "SQL_PASSWORD": parts.password,
        "SQL_SSL_MODE": sslmode,
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
    return origin


def _url_secrets(url: str, result: UrlResult) -> list[str]:
    """The URL's password; for a URL with problems, also whatever may hold one.

    A URL that could not be parsed cleanly may carry its password where the parser
    gave up: in the user:password part or in a ``password=`` parameter.  Each such
    text, raw and decoded, is a secret, so no problem message can echo it.
    """
    found = [result.parts.password] if result.parts.password else []
    if result.problems:
        rest = url.partition("://")[2]
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            found += [userinfo, userinfo.partition(":")[2], userinfo.rpartition(":")[2]]
        for match in re.finditer(r"(?:^|[?&])password=([^&#]*)", rest, re.IGNORECASE):
            found += [match.group(1), unquote(match.group(1))]
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
