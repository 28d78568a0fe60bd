"""The process entry point (``preflight`` and ``python -m preflight``).

Signal handlers go in before anything heavy is imported, and the start time is
taken here, so the deadline counts the whole run, start-up included.

The cyclic garbage collector is off while the process starts: importing
psycopg, structlog and tenacity creates some 60,000 tracked objects that live until
the exit, and the collector would walk them again and again for almost nothing
to free (a quarter of a MiB); off, start-up to ready is about 10 ms shorter
(benchmarks/RESULTS.md, section 1).  The check turns it back on before its first wait
(``_cli``), so a long wait collects as usual.
"""

from __future__ import annotations

import gc
import time
from typing import NoReturn

from . import _signals


def run() -> NoReturn:
    started = time.monotonic()
    gc.disable()
    _signals.install_early()
    from ._cli import run as cli

    cli(started)
