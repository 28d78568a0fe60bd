"""Command line: ``preflight [check]`` and ``preflight explain``.

psycopg and tenacity are imported only when a check actually runs, so
``explain`` and configuration errors stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from . import _env, _exit_codes, _logging, _signals, _termination
from ._errors import ConfigError, Interrupted, PreflightError
from ._plan import explain, resolve

COMMANDS = ("check", "explain")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a structured ``usage`` failure (exit 2)."""

    termination_log = _termination.DEFAULT_PATH

    def error(self, message: str) -> NoReturn:
        hint = "run `preflight --help`"
        _logging.get_logger().error(
            "preflight.failed",
            **{"class": _exit_codes.USAGE.name},
            exit_code=_exit_codes.USAGE.code,
            reason="usage",
            message=message,
            hint=hint,
        )
        _termination.write(self.termination_log, _logging.scrub(f"usage: {message} - {hint}"))
        raise SystemExit(_exit_codes.USAGE.code)


def _flag_type(spec: _env.OptionSpec) -> Any:
    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.metavar.lower()
    return parse


def build_parser() -> _Parser:
    parser = _Parser(
        prog="preflight",
        description=(
            "Wait until the app's PostgreSQL accepts a login and answers a query. "
            "Reads SQL_* (or DATABASE_URL) and PREFLIGHT_* from the environment; "
            "flags override PREFLIGHT_* variables."
        ),
        epilog="Exit codes: 0 ready, 2 usage, 3 config_invalid, 4 auth_failed, "
        "5 database_missing, 6 tls_failed, 7 check_failed, 10 unreachable, "
        "130/143 interrupted.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="check",
        choices=COMMANDS,
        help="check (default): connect with retries; explain: print the plan as JSON, no network",
    )
    for spec in _env.OPTION_SPECS:
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            type=_flag_type(spec),
            metavar=spec.metavar,
            help=f"{spec.help} [{spec.variable}]",
        )
    return parser


def _explain(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> int:
    try:
        document = explain(environ, overrides)
        code = 0
    except ConfigError as exc:
        document = {
            "error": exc.exit_class.name,
            "exit_code": exc.exit_code,
            "problems": [{"variable": p.variable, "message": p.message} for p in exc.problems],
        }
        code = exc.exit_code
    print(json.dumps(_logging.scrub(document), indent=2))  # main() registered the secrets
    return code


def _fail(log: Any, exc: PreflightError, termination_log: str, **extra: Any) -> int:
    log.error(
        "preflight.failed",
        **{"class": exc.exit_class.name},
        exit_code=exc.exit_code,
        reason=exc.reason,
        message=exc.message,
        hint=exc.hint,
        **extra,
    )
    _termination.write(termination_log, _logging.scrub(exc.one_line()))
    return exc.exit_code


def _termination_log(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> str:
    """Where the termination message goes, even when the rest of the config is bad."""
    configured = overrides.get("termination_log") or environ.get("PREFLIGHT_TERMINATION_LOG")
    return (configured or "").strip() or _termination.DEFAULT_PATH


def _check(environ: Mapping[str, str], overrides: Mapping[str, Any], log: Any) -> int:
    termination_log = _termination_log(environ, overrides)
    try:
        settings, options = _env.load(environ, overrides)
    except ConfigError as exc:
        problems = [str(p) for p in exc.problems]
        return _fail(log, exc, termination_log, problems=problems)
    if settings.engine == "sqlite":
        log.info("preflight.skipped", engine="sqlite", reason="SQLite has no server to check")
        return 0

    plan = resolve(settings)
    _logging.add_secrets(plan.secrets())
    log.log(
        30 if plan.warnings else 20,
        "preflight.plan",
        kind_source="SQL_CONNECTION_TYPE" if settings.connection_type else "detected",
        timeout=options.timeout,
        **plan.explain(),
    )

    from ._check import check  # psycopg and tenacity load here, not before

    try:
        result = check(plan, options, log)
    except PreflightError as exc:
        return _fail(
            log,
            exc,
            options.termination_log,
            attempts=exc.attempts,
            elapsed=round(exc.elapsed or 0.0, 3),
        )
    facts = result.facts
    fields: dict[str, Any] = {}
    if options.require_extensions:
        fields["extensions"] = facts.extensions.as_log()
    log.info(
        "preflight.ready",
        attempts=result.attempts,
        elapsed=round(result.elapsed, 3),
        server_version=facts.server_version,
        tls=facts.tls,
        tls_protocol=facts.tls_protocol,
        in_recovery=facts.in_recovery,
        **fields,
    )
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    environ = os.environ if environ is None else environ
    _signals.install()
    _logging.set_secrets(_env.secret_values(environ))
    try:
        early_format = _env.parse_log_format(environ.get("PREFLIGHT_LOG_FORMAT", "auto"))
    except ValueError:
        early_format = "json"
    _logging.configure(early_format)
    log = _logging.get_logger()
    try:
        parser = build_parser()
        parser.termination_log = _termination_log(environ, {})
        args = parser.parse_args(argv)
        overrides = {
            spec.name: getattr(args, spec.name)
            for spec in _env.OPTION_SPECS
            if getattr(args, spec.name) is not None
        }
        if "log_format" in overrides:
            _logging.configure(overrides["log_format"])
        if args.command == "explain":
            return _explain(environ, overrides)
        return _check(environ, overrides, log)
    except Interrupted as stop:
        name = signal.Signals(stop.signum).name
        log.warning("preflight.interrupted", signal=name, exit_code=stop.exit_code)
        return stop.exit_code


def run() -> NoReturn:
    sys.exit(main())
