"""``python -m preflight``: the same as the ``preflight`` command."""

from ._cli import run

run()
