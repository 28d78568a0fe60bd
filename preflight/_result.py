"""One shape for "a value, what is wrong with it, and what to look out for".

Reading the URL, the settings, the options and the libpq environment, choosing
the SSL mode and building the plan each return a :class:`Found`: the value
(``None`` where nothing usable came out), every problem (each naming the
variable at fault) and every warning.  Pure, standard library only.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

from ._errors import Problem

T = TypeVar("T")


class Found(NamedTuple, Generic[T]):
    """A value with the problems and warnings met while reading or choosing it."""

    value: T
    problems: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()
