"""One pass over the environment: settings, options, plan, problems, secrets.

:func:`load` reads every variable once, never raises half-way, and returns all
it found.  The CLI (check and explain) calls it once; the Django helper uses
``read_settings`` and ``build_plan`` alone, so ``PREFLIGHT_*`` never affects the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import _options, _settings
from ._cluster import services_links
from ._errors import ConfigError, Problem
from ._options import Options, read_options
from ._plan import Plan, build_plan
from ._settings import DatabaseSettings, read_settings
from ._values import closest

KNOWN = _settings.VARIABLES + _options.VARIABLES
PREFIXES = ("SQL_", "PREFLIGHT_")


class Config(NamedTuple):
    """Everything the environment and the flags say, read once."""

    settings: DatabaseSettings
    options: Options
    plan: Plan | None  # None for SQLite, or when there are problems
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]  # about the environment itself (unknown variables)
    secrets: tuple[str, ...]

    def error(self) -> ConfigError | None:
        return ConfigError(self.problems) if self.problems else None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``SQL_*``/``PREFLIGHT_*`` variable the preflight does not know."""
    warnings = []
    links = {n for prefix in ("SQL", "PREFLIGHT") for n in services_links(environ, prefix)}
    for name in sorted(environ):
        if name.startswith(PREFIXES) and name not in KNOWN and name not in links:
            near = closest(name, list(KNOWN))
            hint = f" (did you mean {near}?)" if near else ""
            warnings.append(f"{name} is not a variable the preflight knows; it is ignored{hint}")
    return warnings


def load(environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Config:
    """Read the whole contract in one pass; never raises for bad input."""
    found = read_settings(environ)
    options = read_options(environ, overrides)
    problems = [*found.problems, *options.problems]
    plan = None
    settings = found.value.settings
    if settings.engine == "postgresql" and not found.problems:
        planned = build_plan(settings, environ)
        plan = planned.value
        problems.extend(planned.problems)
    return Config(
        settings,
        options.value,
        plan,
        tuple(problems),
        (*found.warnings, *unknown_variables(environ)),
        found.value.secrets,
    )
