"""The preflight's own knobs: ``PREFLIGHT_*`` variables and their flags.

``SPECS`` is the one table: the CLI builds its flags from it and the options
table in docs/configuration.md is generated from it.  The Django helper never reads these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from ._errors import Problem
from ._result import Found
from ._values import (
    VALUE_LIMIT,
    parse_bool,
    parse_connect_timeout,
    parse_delay,
    parse_extensions,
    parse_fraction,
    parse_log_format,
    parse_path,
    parse_seconds,
)

DEFAULT_TERMINATION_LOG = "/dev/termination-log"  # where the kubelet looks
LogFormat = Literal["auto", "json", "console"]


class Options(NamedTuple):
    """The preflight's own settings, validated."""

    timeout: float = 60.0
    connect_timeout: int = 5
    backoff_initial: float = 0.1
    backoff_max: float = 0.8
    jitter: float = 0.5
    require_extensions: tuple[str, ...] = ()
    create_extensions: bool = False
    retry_auth: bool = False
    termination_log: str = DEFAULT_TERMINATION_LOG
    log_format: LogFormat = "auto"


class OptionSpec(NamedTuple):
    """One knob: its field, variable, flag, parser and help."""

    name: str
    variable: str
    flag: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"


SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "timeout",
        "PREFLIGHT_TIMEOUT",
        "--timeout",
        parse_seconds,
        "overall deadline in seconds, covering DNS, every attempt and the queries; "
        "0 waits forever (default 60)",
        "SECONDS",
    ),
    OptionSpec(
        "connect_timeout",
        "PREFLIGHT_CONNECT_TIMEOUT",
        "--connect-timeout",
        parse_connect_timeout,
        "per-attempt connect timeout in whole seconds, 2 to 3600, never past the "
        "deadline (default 5)",
        "SECONDS",
    ),
    OptionSpec(
        "backoff_initial",
        "PREFLIGHT_BACKOFF_INITIAL",
        "--backoff-initial",
        parse_delay,
        "delay before the first retry in seconds; doubles per attempt (default 0.1)",
        "SECONDS",
    ),
    OptionSpec(
        "backoff_max",
        "PREFLIGHT_BACKOFF_MAX",
        "--backoff-max",
        parse_delay,
        "cap on the delay between attempts in seconds, at most 3600 (default 0.8)",
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
        "comma-separated extensions that must be installed in the database",
        "NAMES",
    ),
    OptionSpec(
        "create_extensions",
        "PREFLIGHT_CREATE_EXTENSIONS",
        "--create-extensions",
        parse_bool,
        "CREATE EXTENSION IF NOT EXISTS for required extensions that are available and "
        "this role may create (default false)",
        "BOOL",
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
VARIABLES = tuple(spec.variable for spec in SPECS)


def read_options(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> Found[Options]:
    """Read the knobs once; a value in ``overrides`` (from a flag) wins over the variable."""
    overrides = overrides or {}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for spec in SPECS:
        if overrides.get(spec.name) is not None:
            values[spec.name] = overrides[spec.name]
            continue
        raw = environ.get(spec.variable)
        if raw is None or not raw.strip():
            continue
        if len(raw) > VALUE_LIMIT:
            problems.append(Problem(spec.variable, f"is longer than {VALUE_LIMIT} characters"))
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
    return Found(options, tuple(problems))
