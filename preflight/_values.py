"""Value parsers shared by environment variables and command-line flags.

Each takes the raw text and returns the value, or raises ``ValueError`` with a
message that quotes the input (a parser never sees a password: the password
variables are not parsed by these).
"""

from __future__ import annotations

import json
import re

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOG_FORMATS = ("auto", "json", "console")
# Bounds that keep arithmetic finite: a year for the deadline, an hour for a delay.
MAX_TIMEOUT = 365 * 24 * 3600.0
MAX_DELAY = 3600.0
# A variable's value longer than this is a mistake (PostgreSQL refuses a start-up packet
# of more than 10000 bytes anyway): refused before any work is done on it.
VALUE_LIMIT = 1024
_EXTENSION = r"^[a-z0-9_][a-z0-9_-]*$"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def quote(value: object) -> str:
    """A value for a message, in double quotes, with anything unprintable escaped."""
    return json.dumps(str(value))


def closest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The choice that ``word`` is most likely a typo of, or None."""
    import difflib  # only on error paths

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return found[0] if found else None


def _number(text: str, what: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{quote(text)} is not {what}") from None


def parse_seconds(text: str, maximum: float = MAX_TIMEOUT) -> float:
    value = _number(text, "a number of seconds")
    if not 0 <= value <= maximum:
        raise ValueError(f"{quote(text)} must be a number of seconds from 0 to {maximum:g}")
    return value


def parse_delay(text: str) -> float:
    value = parse_seconds(text, MAX_DELAY)
    if value <= 0:
        raise ValueError(f"{quote(text)} must be more than 0 seconds")
    return value


def parse_connect_timeout(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{quote(text)} is not a whole number of seconds") from None
    if not 2 <= value <= MAX_DELAY:
        raise ValueError(f"{quote(text)} must be from 2 (the least libpq allows) to 3600")
    return value


def parse_fraction(text: str) -> float:
    value = _number(text, "a number between 0 and 1")
    if not 0 <= value <= 1:
        raise ValueError(f"{quote(text)} is not between 0 and 1")
    return value


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{quote(text)} is not a yes/no value (true, false, 1, 0)")


def parse_extensions(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if not re.match(_EXTENSION, n)]
    if bad:
        raise ValueError(f"{', '.join(map(quote, bad))} is not an extension name")
    return names


def parse_log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"{quote(text)} is not one of {', '.join(LOG_FORMATS)}")
    return value


def parse_path(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    return value


def parse_whole_number(text: str) -> int:
    """A whole number as libpq reads an integer parameter: signed, space around allowed."""
    value = text.strip()
    if not value.removeprefix("-").removeprefix("+").isdigit() or not value.isascii():
        raise ValueError(f"{quote(text)} is not a whole number (libpq refuses it)")
    return int(value)


def parse_port(text: str, *, shown: bool = True) -> int:
    """A TCP port, 1-65535.  ``shown=False`` keeps the text out of the message (a URL's
    port may be a password shifted there by a missing ``@``)."""
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{quote(text) if shown else 'it'} is not a port number")
    port = int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is outside the port range 1-65535")
    return port


def parse_sslmode(text: str) -> str:
    value = text.strip().lower()
    if value not in SSL_MODES:
        near = closest(value, SSL_MODES)
        hint = f" (did you mean {near}?)" if near else ""
        raise ValueError(f"{quote(text)} is not one of {', '.join(SSL_MODES)}{hint}")
    return value
