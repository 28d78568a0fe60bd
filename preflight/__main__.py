"""``python -m preflight``: the same as the ``preflight`` command."""

from ._entry import run

run()
