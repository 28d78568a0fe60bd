"""Command line: ``preflight [check]``, ``preflight explain``, ``preflight --version``.

The process around the check: it reads the environment once (``_config``),
sets up redaction and logs, runs the check with a logging hook, and turns the
outcome into an exit code, a ``preflight.failed`` event and the termination
message.  Every failure, usage errors included, leaves through one path
(:func:`_fail`).  structlog, tenacity and psycopg are imported only here and
below, after a check that they are installed (the ``[check]`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import _events, _exit_codes, _options, _signals
from ._config import Config, load
from ._errors import ConfigError, InternalError, Interrupted, PreflightError, UsageError
from ._exit_codes import Reason
from ._redact import Redactor
from ._values import closest, parse_bool

if TYPE_CHECKING:
    from ._check import RetryDetails
    from ._plan import Plan

COMMANDS = ("check", "explain")


def version() -> str:
    """The installed distribution's version (``preflight.__version__``)."""
    from . import __version__

    return str(__version__)


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, reason=Reason.USAGE)


def _flag_type(spec: _options.OptionSpec) -> Any:
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
        allow_abbrev=False,
        description=(
            "Wait until the app's PostgreSQL accepts a login and answers a query. "
            "Reads SQL_* (or DATABASE_URL) and PREFLIGHT_* from the environment; "
            "flags override PREFLIGHT_* variables."
        ),
        epilog=_exit_codes.epilog(),
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="check",
        choices=COMMANDS,
        help="check (default): connect with retries; explain: print the plan as JSON, no network",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    for spec in _options.SPECS:
        boolean: dict[str, Any] = {"nargs": "?", "const": True} if _is_bool(spec) else {}
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            type=_flag_type(spec),
            metavar=spec.metavar,
            help=f"{spec.help} [{spec.variable}]",
            **boolean,
        )
    return parser


def _is_bool(spec: _options.OptionSpec) -> bool:
    return spec.parse is parse_bool


def _bare_booleans(argv: list[str]) -> list[str]:
    """``--create-extensions`` alone means true, even before the command word.

    A yes/no flag takes the next word as its value only when that word is a yes/no
    value; otherwise (``--create-extensions explain``) the flag stands bare.
    """
    flags = {spec.flag for spec in _options.SPECS if _is_bool(spec)}
    out = list(argv)
    for index, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        if arg in flags:
            try:
                parse_bool(argv[index + 1])
            except ValueError:
                out[index] = f"{arg}=true"
    return out


def _unknown_flag(argv: Sequence[str]) -> UsageError | None:
    """A flag the parser does not know, named, with the closest known one.

    argparse would read ``--timout 5`` as the command ``5``; naming the flag is kinder.
    """
    known = ["--help", "-h", "--version", *(spec.flag for spec in _options.SPECS)]
    for arg in argv:
        if arg == "--":
            return None
        flag = arg.split("=", 1)[0]
        if arg.startswith("-") and flag not in known and not _is_number(arg):
            near = closest(flag, known)
            hint = f" (did you mean {near}?)" if near else ""
            return UsageError(f"unrecognized flag {flag}{hint}", reason=Reason.USAGE)
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` read by hand, for a run whose flags failed to parse."""
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


class _Run:
    """One command-line run: its config, its redactor, its logger."""

    def __init__(
        self, config: Config, redactor: Redactor, termination_log: str, started: float | None
    ) -> None:
        from . import _logging

        self.started = started
        self.config = config
        self.redactor = redactor
        self.termination_log = termination_log
        self.log = _logging.get_logger()
        self.plan: Plan | None = None  # once the check has one
        self.suspected = False  # the replica-cluster warning was given

    def fail(self, exc: PreflightError, **extra: Any) -> int:
        from . import _termination

        fields: dict[str, Any] = {"class": exc.exit_class.name}
        if isinstance(exc, ConfigError):
            fields["problems"] = [str(p) for p in exc.problems]
        self.log.error(
            _events.FAILED,
            **fields,
            exit_code=exc.exit_code,
            reason=str(exc.reason),
            message=exc.message,
            hint=exc.hint,
            **extra,
        )
        why = _termination.write(self.termination_log, self.redactor.text(exc.one_line()))
        if why is not None:
            self.log.warning(
                _events.TERMINATION_LOG_UNWRITABLE, path=self.termination_log, error=why
            )
        return exc.exit_code

    def explain(self) -> int:
        from ._explain import explain

        document, code = explain(self.config, self.redactor)
        try:
            if sys.stdout is None:  # started with stdout closed
                raise OSError("stdout is closed")
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            return self.fail(
                UsageError("cannot write the document to stdout", reason=Reason.OUTPUT_FAILED)
            )
        return code

    def check(self) -> int:
        """The check through the same path as ``preflight.check()``, logged."""
        from ._api import run

        for warning in self.config.warnings:
            self.log.warning(_events.CONFIG_WARNING, message=warning)
        try:
            outcome = run(
                self.config, on_plan=self._log_plan, on_retry=self._on_retry, started=self.started
            )
        except PreflightError as error:
            if error.attempts is None or error.elapsed is None:
                return self.fail(error)
            return self.fail(error, attempts=error.attempts, elapsed=round(error.elapsed, 3))
        facts = outcome.facts
        if facts is None:
            self.log.info(_events.SKIPPED, engine="sqlite", reason="SQLite has no server to check")
            return 0
        fields: dict[str, Any] = {}
        if self.config.options.require_extensions:
            fields["extensions"] = facts.extensions.as_log()
        for notice in facts.notices:
            self.log.warning(_events.LIBPQ_NOTICE, message=notice)
        if facts.extensions.created:
            self.log.info(_events.EXTENSIONS_CREATED, extensions=list(facts.extensions.created))
        self.log.info(
            _events.READY,
            attempts=outcome.attempts,
            elapsed=round(outcome.elapsed, 3),
            server_version=facts.server_version,
            tls=facts.tls,
            tls_protocol=facts.tls_protocol,
            in_recovery=facts.in_recovery,
            **fields,
        )
        return 0

    def _log_plan(self, plan: Plan) -> None:
        from ._explain import plan_document

        self.plan = plan
        self.log.log(
            30 if plan.warnings else 20,
            _events.PLAN,
            kind_source="SQL_CONNECTION_TYPE" if plan.settings.connection_type else "detected",
            timeout=self.config.options.timeout,
            **plan_document(plan, self.redactor),
        )

    def _on_retry(self, details: RetryDetails) -> None:
        _collect_from_now()
        error = details.error
        self.log.warning(
            _events.ATTEMPT_FAILED,
            attempt=details.attempt,
            reason=str(error.reason),
            message=error.message,
            next_delay=round(details.next_delay, 3),
            elapsed=round(details.elapsed, 3),
        )
        if (
            error.reason is Reason.READ_ONLY
            and not self.suspected
            and details.timeout > 0
            and details.elapsed >= details.timeout / 2
        ):
            self.suspected = True
            self.log.warning(
                _events.REPLICA_CLUSTER_SUSPECTED,
                host=self.plan.host if self.plan is not None else None,
                elapsed=round(details.elapsed, 3),
                message="the -rw target has been in recovery for half the deadline: if "
                "it is a CloudNativePG replica cluster, its designated primary never "
                "becomes writable; point SQL_HOST at the primary cluster",
            )


def _missing_extra() -> str | None:
    """The first of the check's dependencies that is not installed, or None."""
    import importlib.util

    for module in ("structlog", "tenacity", "psycopg"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def _no_extra(module: str) -> int:
    from datetime import UTC, datetime

    line = {
        "event": _events.FAILED,
        "level": "error",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "class": _exit_codes.USAGE.name,
        "exit_code": _exit_codes.USAGE.code,
        "reason": str(Reason.CHECK_EXTRA_MISSING),
        "message": f"{module} is not installed",
        "hint": _exit_codes.REASONS[Reason.CHECK_EXTRA_MISSING].hint,
    }
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(json.dumps(line), file=sys.stderr, flush=True)
    return _exit_codes.USAGE.code


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    started: float | None = None,
) -> int:
    """Run the command line; returns the exit code.

    ``started`` is when the process started (the deadline counts from there).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if argv == ["--version"]:  # needs nothing, not even the [check] extra
        print(f"preflight {version()}")
        return 0
    missing = _missing_extra()
    if missing is not None:
        return _no_extra(missing)
    try:
        _signals.install()  # raises at once for a signal that came during start-up
        return _main(argv, environ, started)
    except Interrupted as stop:
        import structlog

        from . import _logging

        if not structlog.is_configured():
            _logging.configure("json")
        name = signal.Signals(stop.signum).name
        _logging.get_logger().warning(_events.INTERRUPTED, signal=name, exit_code=stop.exit_code)
        return stop.exit_code


def _main(argv: list[str], environ: Mapping[str, str], started: float | None) -> int:
    from . import _logging

    usage: UsageError | None = _unknown_flag(argv)
    overrides: dict[str, Any] = {}
    command = "check"
    wants_version = False
    if usage is None:
        try:
            args = build_parser().parse_args(_bare_booleans(argv))
            command, wants_version = args.command, args.version
            overrides = {
                spec.name: getattr(args, spec.name)
                for spec in _options.SPECS
                if getattr(args, spec.name) is not None
            }
        except UsageError as exc:
            usage = exc
    config = load(environ, overrides)
    redactor = Redactor(config.secrets)
    _logging.set_redactor(redactor)
    log_format = config.options.log_format
    if any(p.variable == "PREFLIGHT_LOG_FORMAT" for p in config.problems):
        log_format = "json"
    _logging.configure(log_format)
    _quiet_psycopg()
    termination_log = config.options.termination_log
    if usage is not None:
        termination_log = _flag_value(argv, "--termination-log") or termination_log
    run = _Run(config, redactor, termination_log, started)
    try:
        if usage is not None:
            return run.fail(usage)
        if wants_version:
            print(f"preflight {version()}")
            return 0
        if command == "explain":
            return run.explain()
        return run.check()
    except Interrupted:
        raise
    except Exception as exc:
        return run.fail(
            InternalError(f"unexpected {type(exc).__name__}", reason=Reason.INTERNAL_ERROR)
        )


def _collect_from_now() -> None:
    """The check is about to wait: turn the garbage collector back on (``_entry`` turns it
    off for the start-up), leaving what start-up made out of its reach (``gc.freeze``)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _quiet_psycopg() -> None:
    """psycopg reports what it ignores while closing a connection the deadline cut short
    through the logging module, which would print a plain-text line on stderr; the
    preflight's own events say what happened.  The process's choice, made here:
    ``preflight.check()`` leaves the caller's logging alone."""
    import logging

    logger = logging.getLogger("psycopg")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


def _flush_outputs() -> None:
    """Flush stdout and stderr.  A stream that cannot take it (closed, a broken pipe,
    a full disk) is swapped for /dev/null: output never changes the outcome, not
    even through Python's own flush at exit (which would make it exit 120)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives until exit


def run(started: float | None = None) -> NoReturn:
    """The process: run the command, flush what it wrote, and leave at once.

    Once the outcome is written (the last event and the termination message go
    out unbuffered, stdout is flushed here) nothing is left to do, so the process
    ends with ``os._exit``: no interpreter teardown, which took about 40 ms after
    the answer (benchmarks/RESULTS.md).  An exit status that is not a number
    (argparse's own exit with a message) takes the ordinary way out.
    """
    try:
        code: int | str | None = main(started=started)
    except SystemExit as leaving:  # --help, argparse's own exit
        code = leaving.code
    _flush_outputs()
    if code is None or isinstance(code, int):
        os._exit(code or 0)
    sys.exit(code)
