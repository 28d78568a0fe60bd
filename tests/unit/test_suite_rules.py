"""Rules the test suite keeps about itself, checked on its source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SERVER_TIERS = ("integration", "deploy", "image", "support")
# Sleeps whose length is not a literal: a poll step under a deadline.
POLLS = {("support/faults.py", "wait_for")}
LONGEST_SLEEP = 0.5


def _sleeps(path: Path) -> list[tuple[str, int, ast.expr | None]]:
    """(enclosing function, line, argument) of every ``time.sleep``/``sleep`` call."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == "sleep":
                    found.append((name, child.lineno, child.args[0] if child.args else None))
            visit(child, name)

    visit(ast.parse(path.read_text()), "")
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for tier in SERVER_TIERS for p in (TESTS / tier).rglob("*.py")),
    ids=lambda p: str(p.relative_to(TESTS)),
)
def test_no_fixed_sleep_over_half_a_second(path: Path) -> None:
    """Tests that run servers wait on events or poll a condition: no sleep over 0.5 s."""
    relative = str(path.relative_to(TESTS))
    for function, line, argument in _sleeps(path):
        if (relative, function) in POLLS:
            continue
        where = f"{relative}:{line}"
        assert isinstance(argument, ast.Constant), f"{where}: sleep of a computed length"
        assert isinstance(argument.value, int | float), where
        assert argument.value <= LONGEST_SLEEP, f"{where}: sleep({argument.value})"
