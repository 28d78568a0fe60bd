"""The process entry point (``preflight`` and ``python -m preflight``).

Signal handlers go in before anything heavy is imported, and the start time is
taken here, so the deadline counts the whole run, start-up included.
"""

from __future__ import annotations

import time
from typing import NoReturn

from . import _signals


def run() -> NoReturn:
    started = time.monotonic()
    _signals.install_early()
    from ._cli import run as cli

    cli(started)
