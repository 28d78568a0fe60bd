"""One root exception, one subclass per failure class."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from . import _exit_codes
from ._exit_codes import ExitClass


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every secret in every string inside it replaced by ``***``.

    Works on strings and on dicts and lists of them (a log event, a JSON
    document), so a structure stays valid after redaction.
    """
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        # Keys too: a password that happens to be part of a field name must not show.
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


class Problem(NamedTuple):
    """One thing wrong with the configuration, naming the variable."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


class PreflightError(Exception):
    """Root of every failure the preflight reports with an exit code."""

    exit_class: ExitClass = _exit_codes.UNREACHABLE

    def __init__(self, message: str, *, reason: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.hint = hint
        self.attempts: int | None = None  # filled in by the check loop
        self.elapsed: float | None = None

    @property
    def exit_code(self) -> int:
        return self.exit_class.code

    def one_line(self) -> str:
        """The reason a person can act on, on one line (the termination message)."""
        text = f"{self.exit_class.name} ({self.reason}): {self.message}"
        if self.hint:
            text += f" - {self.hint}"
        return " ".join(text.split())


class ConfigError(PreflightError):
    """The environment is invalid; ``problems`` lists every problem found."""

    exit_class = _exit_codes.CONFIG_INVALID

    def __init__(self, problems: Sequence[Problem], *, secrets: Sequence[str] = ()) -> None:
        self.problems = tuple(Problem(p.variable, redact(p.message, secrets)) for p in problems)
        summary = "; ".join(str(p) for p in self.problems)
        super().__init__(
            summary,
            reason="config_invalid",
            hint="fix the variables named above; `preflight explain` shows the resolved plan",
        )


class AuthFailed(PreflightError):
    exit_class = _exit_codes.AUTH_FAILED


class DatabaseMissing(PreflightError):
    exit_class = _exit_codes.DATABASE_MISSING


class TlsFailed(PreflightError):
    exit_class = _exit_codes.TLS_FAILED


class CheckFailed(PreflightError):
    exit_class = _exit_codes.CHECK_FAILED


class Unreachable(PreflightError):
    """The database did not answer (yet); retried until the deadline."""

    exit_class = _exit_codes.UNREACHABLE


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; a BaseException so no retry loop swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return _exit_codes.interrupted_code(self.signum)
