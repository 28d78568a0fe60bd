"""The environment contract: ``SQL_*``, ``DATABASE_URL`` and ``PREFLIGHT_*``.

Parsing is pure (it reads a mapping and, for ``SQL_PASSWORD_FILE``, one file)
and collects *every* problem before it gives up, so one run shows all that is
wrong.  No message ever contains a password.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from ._errors import ConfigError, Problem
from ._hosts import Kind, normalize_host, parse_ip
from ._sslmode import SSL_MODES

POSTGRESQL_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}
)
SQLITE_ENGINE = "django.db.backends.sqlite3"
DEFAULT_ENGINE = "django.db.backends.postgresql"
DEFAULT_PORT = 5432
DEFAULT_TERMINATION_LOG = "/dev/termination-log"  # where the kubelet looks
URL_SCHEMES = ("postgres", "postgresql")
CONNECTION_VARIABLES = (
    "SQL_HOST",
    "SQL_PORT",
    "SQL_DATABASE",
    "SQL_USER",
    "SQL_PASSWORD",
    "SQL_PASSWORD_FILE",
    "SQL_SSL_MODE",
    "SQL_SSL_ROOT_CERT",
)

# Plain strings: the re module compiles (and caches) them on first use only.
_LABEL = r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$"
_EXTENSION = r"^[a-z0-9_][a-z0-9_-]*$"


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

    engine: str  # "postgresql" or "sqlite"
    host: str | None = None
    port: int = DEFAULT_PORT
    database: str | None = None
    user: str | None = None
    password: Secret | None = None
    password_source: str | None = None  # the variable the password came from
    password_file: str | None = None
    sslmode: str | None = None  # explicit mode, or None for "choose by kind"
    sslrootcert: str | None = None
    connection_type: Kind | None = None
    source: str = "SQL_*"  # or "DATABASE_URL"


class Options(NamedTuple):
    """The preflight's own knobs (``PREFLIGHT_*`` variables and their flags)."""

    timeout: float = 60.0
    connect_timeout: int = 5
    backoff_initial: float = 0.1
    backoff_max: float = 0.8
    jitter: float = 0.5
    require_extensions: tuple[str, ...] = ()
    retry_auth: bool = False
    termination_log: str = DEFAULT_TERMINATION_LOG
    log_format: str = "auto"


# --- value parsers: shared by environment variables and command-line flags ---


def parse_seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{_q(text)} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{_q(text)} must be a finite number of seconds, 0 or more")
    return value


def parse_positive_seconds(text: str) -> float:
    value = parse_seconds(text)
    if value <= 0:
        raise ValueError(f"{_q(text)} must be more than 0 seconds")
    return value


def parse_connect_timeout(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{_q(text)} is not a whole number of seconds") from None
    if value < 2:
        raise ValueError(f"{_q(text)} is below 2 seconds, the least libpq allows")
    return value


def parse_fraction(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{_q(text)} is not a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{_q(text)} is not between 0 and 1")
    return value


def parse_extensions(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if not re.match(_EXTENSION, n)]
    if bad:
        raise ValueError(f"{', '.join(map(_q, bad))} is not an extension name")
    return names


def _q(value: object) -> str:
    """Quote a value for a message the way the README shows it: in double quotes."""
    return json.dumps(str(value), ensure_ascii=False)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{_q(text)} is not a yes/no value (true, false, 1, 0)")


def parse_log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "json", "console"):
        raise ValueError(f"{_q(text)} is not one of auto, json, console")
    return value


def parse_path(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    return value


class OptionSpec(NamedTuple):
    """One ``PREFLIGHT_*`` knob: its variable, its flag and how to read it."""

    name: str
    variable: str
    flag: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "timeout",
        "PREFLIGHT_TIMEOUT",
        "--timeout",
        parse_seconds,
        "overall deadline in seconds; 0 waits forever (default 60)",
        "SECONDS",
    ),
    OptionSpec(
        "connect_timeout",
        "PREFLIGHT_CONNECT_TIMEOUT",
        "--connect-timeout",
        parse_connect_timeout,
        "per-attempt connect timeout in whole seconds, at least 2, clipped to the "
        "time left (default 5)",
        "SECONDS",
    ),
    OptionSpec(
        "backoff_initial",
        "PREFLIGHT_BACKOFF_INITIAL",
        "--backoff-initial",
        parse_positive_seconds,
        "delay before the first retry in seconds; doubles per attempt (default 0.1)",
        "SECONDS",
    ),
    OptionSpec(
        "backoff_max",
        "PREFLIGHT_BACKOFF_MAX",
        "--backoff-max",
        parse_positive_seconds,
        "cap on the delay between attempts in seconds (default 0.8)",
        "SECONDS",
    ),
    OptionSpec(
        "jitter",
        "PREFLIGHT_JITTER",
        "--jitter",
        parse_fraction,
        "share of each delay that is random, 0 to 1 (default 0.5)",
        "FRACTION",
    ),
    OptionSpec(
        "require_extensions",
        "PREFLIGHT_REQUIRE_EXTENSIONS",
        "--require-extensions",
        parse_extensions,
        "comma-separated extensions the database must have or let this user create",
        "NAMES",
    ),
    OptionSpec(
        "retry_auth",
        "PREFLIGHT_RETRY_AUTH",
        "--retry-auth",
        parse_bool,
        "keep retrying authentication failures until the deadline (for a password "
        "file that may be rotated; default false)",
        "BOOL",
    ),
    OptionSpec(
        "termination_log",
        "PREFLIGHT_TERMINATION_LOG",
        "--termination-log",
        parse_path,
        "file that receives the one-line failure reason (default /dev/termination-log)",
        "PATH",
    ),
    OptionSpec(
        "log_format",
        "PREFLIGHT_LOG_FORMAT",
        "--log-format",
        parse_log_format,
        "auto (console on a terminal, JSON otherwise), json or console (default auto)",
        "FORMAT",
    ),
)


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value, with an empty or blank value counting as unset."""
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value


def load_options(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> tuple[Options, list[Problem]]:
    """Read the ``PREFLIGHT_*`` knobs; values in ``overrides`` (from flags) win."""
    overrides = overrides or {}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for spec in OPTION_SPECS:
        if overrides.get(spec.name) is not None:
            values[spec.name] = overrides[spec.name]
            continue
        raw = _get(environ, spec.variable)
        if raw is None:
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            problems.append(Problem(spec.variable, str(exc)))
    options = Options(**values)
    if options.backoff_max < options.backoff_initial:
        problems.append(
            Problem(
                "PREFLIGHT_BACKOFF_MAX",
                f"{options.backoff_max:g} is less than PREFLIGHT_BACKOFF_INITIAL "
                f"{options.backoff_initial:g}",
            )
        )
    return options, problems


# --- the SQL_* / DATABASE_URL contract ---


def check_host(host: str) -> str | None:
    """What is wrong with a ``SQL_HOST`` value, or None when it is usable."""
    raw = host.strip()
    if "://" in raw:
        parts = urlsplit(raw)
        name = parts.hostname or "the host name"
        return (
            f"looks like a URL ({parts.scheme}://…); set SQL_HOST to the host name "
            f"alone ({name}), or put the whole URL in DATABASE_URL"
        )
    if "," in raw:
        return f"{_q(raw)} lists several hosts; the preflight checks exactly one host"
    if raw.startswith("/"):
        return None
    name = normalize_host(raw)
    if parse_ip(name) is not None:
        return None
    head, sep, tail = raw.rpartition(":")
    if sep and tail.isdigit():
        bare = head[1:-1] if head.startswith("[") and head.endswith("]") else head
        return f"{_q(raw)} includes a port; set SQL_HOST={bare} and SQL_PORT={tail}"
    if "@" in raw:
        return "contains '@'; set the user in SQL_USER and the host name alone in SQL_HOST"
    labels = name.split(".")
    if len(name) > 253 or not all(re.match(_LABEL, label) for label in labels):
        return f"{_q(raw)} is not a valid host name, IP address or socket directory"
    return None


def parse_port(text: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{_q(text)} is not a port number")
    port = int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is outside the port range 1-65535")
    return port


def parse_sslmode(text: str) -> str:
    value = text.strip().lower()
    if value not in SSL_MODES:
        import difflib  # only on this error path

        close = difflib.get_close_matches(value, SSL_MODES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{_q(text)} is not one of {', '.join(SSL_MODES)}{hint}")
    return value


def parse_connection_type(text: str) -> Kind:
    value = text.strip().lower()
    try:
        return Kind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise ValueError(f"{_q(text)} is not one of {kinds}") from None


def _read_password_file(path: str) -> str:
    """The secret in ``path``, without the trailing newline editors and echo add."""
    with open(path, encoding="utf-8") as handle:
        value = handle.read()
    return value.removesuffix("\n").removesuffix("\r")


def read_password_file(path: str) -> Secret:
    return Secret(_read_password_file(path))


class _Collector:
    """Accumulates values and problems while the environment is read."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, variable: str, message: str) -> None:
        self.problems.append(Problem(variable, message))

    def parse(self, variable: str, raw: str | None, parse: Callable[[str], Any]) -> Any:
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.add(variable, str(exc))
            return None


def _parse_url(url: str, out: _Collector) -> dict[str, Any]:
    """Split a ``postgres://`` URL; problems never quote the URL (it holds the password)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        out.add("DATABASE_URL", "is not a valid URL")
        return {}
    if parts.scheme.lower() not in URL_SCHEMES:
        scheme = parts.scheme or "none"
        out.add("DATABASE_URL", f"scheme {_q(scheme)} is not postgres:// or postgresql://")
        return {}
    found: dict[str, Any] = {}
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.lower().startswith("%2f"):  # a percent-encoded socket directory
        host = unquote(hostport.partition(":")[0])
    else:
        host = parts.hostname or ""
    if host:
        found["SQL_HOST"] = host
    try:
        port = parts.port
    except ValueError:
        out.add("DATABASE_URL", "the port is not a number in 1-65535")
        port = None
    if port is not None:
        found["SQL_PORT"] = port
    if parts.path.strip("/"):
        found["SQL_DATABASE"] = unquote(parts.path.lstrip("/"))
    if parts.username:
        found["SQL_USER"] = unquote(parts.username)
    if parts.password:
        found["SQL_PASSWORD"] = Secret(unquote(parts.password))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "sslmode":
            mode = out.parse("DATABASE_URL", value, parse_sslmode)
            if mode is not None:
                found["SQL_SSL_MODE"] = mode
        elif key == "sslrootcert":
            found["SQL_SSL_ROOT_CERT"] = value
        elif key == "host" and value.startswith("/"):
            found["SQL_HOST"] = value
        else:
            out.add("DATABASE_URL", f"query parameter {_q(key)} is not supported")
    return found


def load_database(environ: Mapping[str, str]) -> tuple[DatabaseSettings, list[Problem]]:
    """Read ``SQL_*`` and ``DATABASE_URL`` into settings plus every problem found."""
    out = _Collector()
    raw_engine = _get(environ, "SQL_ENGINE")
    engine_name = raw_engine.strip() if raw_engine else DEFAULT_ENGINE
    url = _get(environ, "DATABASE_URL")

    if engine_name == SQLITE_ENGINE:
        if url is not None:
            out.add("DATABASE_URL", "is set but SQL_ENGINE is sqlite3; unset one of them")
        name = _get(environ, "SQL_DATABASE")
        return DatabaseSettings(engine="sqlite", database=name and name.strip()), out.problems
    if engine_name not in POSTGRESQL_ENGINES:
        out.add(
            "SQL_ENGINE",
            f"{_q(engine_name)} is not supported; use {DEFAULT_ENGINE} "
            f"(or {SQLITE_ENGINE}, which has no server to check)",
        )

    # Values from the SQL_* variables, parsed.
    values: dict[str, Any] = {}
    host = _get(environ, "SQL_HOST")
    if host is not None:
        problem = check_host(host)
        if problem:
            out.add("SQL_HOST", problem)
        values["SQL_HOST"] = host.strip()
    values["SQL_PORT"] = out.parse("SQL_PORT", _get(environ, "SQL_PORT"), parse_port)
    for name in ("SQL_DATABASE", "SQL_USER"):
        raw = _get(environ, name)
        values[name] = raw.strip() if raw is not None else None
    password = environ.get("SQL_PASSWORD") or None
    password_file = _get(environ, "SQL_PASSWORD_FILE")
    if password is not None and password_file is not None:
        out.add("SQL_PASSWORD_FILE", "is set together with SQL_PASSWORD; set only one of them")
    values["SQL_PASSWORD"] = Secret(password) if password is not None else None
    login_origin = "SQL_PASSWORD" if password is not None else None
    if password_file is not None and password is None:
        password_file = password_file.strip()
        try:
            values["SQL_PASSWORD"] = read_password_file(password_file)
            login_origin = "SQL_PASSWORD_FILE"
        except OSError as exc:
            out.add("SQL_PASSWORD_FILE", f"cannot read {password_file} ({exc.strerror})")
        except UnicodeDecodeError:
            out.add("SQL_PASSWORD_FILE", f"{password_file} is not UTF-8 text")
    values["SQL_SSL_MODE"] = out.parse("SQL_SSL_MODE", _get(environ, "SQL_SSL_MODE"), parse_sslmode)
    rootcert = _get(environ, "SQL_SSL_ROOT_CERT")
    values["SQL_SSL_ROOT_CERT"] = rootcert.strip() if rootcert is not None else None
    connection_type = out.parse(
        "SQL_CONNECTION_TYPE", _get(environ, "SQL_CONNECTION_TYPE"), parse_connection_type
    )

    source = "SQL_*"
    if url is not None:
        source = "DATABASE_URL"
        for name, from_url in _parse_url(url, out).items():
            mine = values.get(name)
            if mine is None:
                values[name] = from_url
                if name == "SQL_PASSWORD":
                    login_origin = "DATABASE_URL"
            elif not _same(name, mine, from_url):
                if name == "SQL_PASSWORD":
                    variable = login_origin or "SQL_PASSWORD"
                    out.add(variable, "differs from the password in DATABASE_URL")
                else:
                    out.add(name, f"{_q(mine)} conflicts with {_q(from_url)} in DATABASE_URL")

    if values.get("SQL_HOST") is None:
        out.add("SQL_HOST", "is not set; a PostgreSQL engine needs the database host")
    if values.get("SQL_DATABASE") is None:
        out.add("SQL_DATABASE", "is not set; name the database to connect to")
    if values.get("SQL_USER") is None:
        out.add("SQL_USER", "is not set; name the role to log in as")

    settings = DatabaseSettings(
        engine="postgresql",
        host=values.get("SQL_HOST"),
        port=values.get("SQL_PORT") or DEFAULT_PORT,
        database=values.get("SQL_DATABASE"),
        user=values.get("SQL_USER"),
        password=values.get("SQL_PASSWORD"),
        password_source=login_origin,
        password_file=password_file if login_origin == "SQL_PASSWORD_FILE" else None,
        sslmode=values.get("SQL_SSL_MODE"),
        sslrootcert=values.get("SQL_SSL_ROOT_CERT"),
        connection_type=connection_type,
        source=source,
    )
    return settings, out.problems


def _same(name: str, mine: Any, theirs: Any) -> bool:
    if name == "SQL_HOST":
        return bool(normalize_host(str(mine)) == normalize_host(str(theirs)))
    return bool(mine == theirs)


def load(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> tuple[DatabaseSettings, Options]:
    """Read the whole contract; raise :class:`ConfigError` listing every problem."""
    settings, problems = load_database(environ)
    options, option_problems = load_options(environ, overrides)
    problems.extend(option_problems)
    if problems:
        secrets = [settings.password.reveal()] if settings.password else []
        raise ConfigError(problems, secrets=secrets)
    return settings, options


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Every value in ``environ`` that is or holds a password, for redaction."""
    found: list[str] = []
    password = environ.get("SQL_PASSWORD")
    if password:
        found.append(password)
    url = environ.get("DATABASE_URL")
    if url:
        try:
            raw = urlsplit(url.strip()).password
        except ValueError:
            raw = None
        if raw:
            found.extend({raw, unquote(raw)})
    path = _get(environ, "SQL_PASSWORD_FILE")
    if path is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found.append(_read_password_file(path.strip()))
    return [s for s in found if s]
