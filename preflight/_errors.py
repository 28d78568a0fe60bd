"""One root exception, one subclass per failure class.

An error carries a :class:`Reason`; its failure class, exit code and default
hint are derived from the reason through the table in ``_exit_codes``, so they
can never contradict it.  A subclass names the class its reasons belong to and
refuses any other reason.  Build errors with :func:`error_for`, which picks the
subclass from the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from . import _exit_codes
from ._exit_codes import REASONS, ExitClass, Reason


class Problem(NamedTuple):
    """One thing wrong with the configuration, naming the variable."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


class PreflightError(Exception):
    """Root of every failure the preflight reports with an exit code.

    Its failure class is the reason's (``exit_class``); the root takes any reason.
    """

    # The failure class every reason of this subclass belongs to (None: any).
    kind: ClassVar[ExitClass | None] = None
    # Set when the retry loop ended with this error: attempts made, seconds taken.
    attempts: int | None = None
    elapsed: float | None = None

    def __init__(self, message: str, *, reason: Reason, hint: str | None = None) -> None:
        kind = type(self).kind
        if kind is not None and REASONS[reason].exit_class is not kind:
            raise TypeError(
                f"{type(self).__name__} is {kind.name}, but the reason {reason} is "
                f"{REASONS[reason].exit_class.name}: use error_for()"
            )
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.hint = REASONS[reason].hint if hint is None else hint

    @property
    def exit_class(self) -> ExitClass:
        """The failure class, derived from the reason."""
        return REASONS[self.reason].exit_class

    @property
    def exit_code(self) -> int:
        return self.exit_class.code

    @property
    def retryable(self) -> bool:
        return REASONS[self.reason].retried

    def one_line(self) -> str:
        """The reason a person can act on, on one line (the termination message)."""
        text = f"{self.exit_class.name} ({self.reason}): {self.message}"
        if self.hint:
            text += f" - {self.hint}"
        return " ".join(text.split())


class UsageError(PreflightError):
    kind = _exit_codes.USAGE


class ConfigError(PreflightError):
    """The environment is invalid; ``problems`` lists every problem found."""

    kind = _exit_codes.CONFIG_INVALID

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        reason: Reason = Reason.CONFIG_INVALID,
        hint: str | None = None,
    ) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)), reason=reason, hint=hint)


class AuthFailed(PreflightError):
    kind = _exit_codes.AUTH_FAILED


class DatabaseMissing(PreflightError):
    kind = _exit_codes.DATABASE_MISSING


class TlsFailed(PreflightError):
    kind = _exit_codes.TLS_FAILED


class CheckFailed(PreflightError):
    kind = _exit_codes.CHECK_FAILED


class PoolerRefused(PreflightError):
    """The migrate runner will not take its lock through a connection pooler."""

    kind = _exit_codes.POOLER


class Unreachable(PreflightError):
    """The database did not answer (yet); retried until the deadline."""

    kind = _exit_codes.UNREACHABLE


class InternalError(PreflightError):
    """A bug: an exception nobody expected (its message is never shown: it may hold input)."""

    kind = _exit_codes.INTERNAL_ERROR


_BY_CLASS: dict[ExitClass | None, type[PreflightError]] = {
    cls.kind: cls
    for cls in (
        UsageError,
        AuthFailed,
        DatabaseMissing,
        TlsFailed,
        CheckFailed,
        PoolerRefused,
        Unreachable,
        InternalError,
    )
}


def error_for(reason: Reason, message: str, *, hint: str | None = None) -> PreflightError:
    """The exception for ``reason``, of the subclass its failure class names."""
    exit_class = REASONS[reason].exit_class
    if exit_class is _exit_codes.CONFIG_INVALID:
        return ConfigError([Problem("connection", message)], reason=reason, hint=hint)
    return _BY_CLASS[exit_class](message, reason=reason, hint=hint)


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; a BaseException so no retry loop swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return _exit_codes.interrupted_code(self.signum)
