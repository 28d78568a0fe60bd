"""The benchmarks run (with tiny counts), so they cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import chaos
from benchmarks import run as runner
from tests.support.ci import unavailable
from tests.support.pgbouncer import pgbouncer_binary

ROOT = Path(__file__).resolve().parents[1]


def _bench(out: Path, *args: str) -> str:
    subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args, "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=900,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return out.read_text()


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    """`python -m benchmarks.run --smoke` completes and reports every section."""
    if not Path("/usr/bin/time").exists():
        unavailable("GNU time (Debian package time) is not installed")
    text = _bench(tmp_path / "results.md", "--smoke")
    for heading in (
        "## 1. Start-up to ready",
        "## 2. Time to notice",
        "## 3. The herd",
        "## 3b. Jitter",
    ):
        assert heading in text
    assert "| preflight |" in text
    assert "exit codes | {0: 5}" in text


@pytest.mark.slow
@pytest.mark.root
def test_chaos_smoke(tmp_path: Path) -> None:
    """A few chaos runs (one per kind of fault) complete and write the chaos section."""
    if pgbouncer_binary() is None:
        unavailable("pgbouncer (Debian package pgbouncer) is not installed")
    out = tmp_path / "results.md"
    out.write_text("# Benchmark results\n\n## Migrations\n\nkept as it was\n")
    runs = len(chaos.KINDS)
    text = _bench(out, "chaos", "--smoke", "--chaos-runs", str(runs))
    assert "## 5. Chaos: randomised fault injection" in text
    assert f"{runs} runs over {runs} kinds of fault" in text
    for target in ("| false ready: 0 |", "| retryable faults that ended fatal: 0 |"):
        assert target in text
    assert "## Migrations\n\nkept as it was" in text


@pytest.mark.parametrize(
    ("old", "new", "kept", "gone"),
    [
        ("## 1. A\n\nold one\n\n## 2. B\n\nold two\n", [("1. A", "new one")], "old two", "old one"),
        ("## 3. H\n\nh\n\n## 3b. J\n\nj\n", [("3b. J", "jj")], "\nh\n", "\nj\n"),
        ("## Migrations\n\nm\n", [("5. Chaos", "c")], "\nm\n", "nothing"),
    ],
)
def test_results_merge_keeps_other_sections(
    old: str, new: list[tuple[str, str]], kept: str, gone: str
) -> None:
    """Rewriting some sections of RESULTS.md keeps every other section as it was."""
    text = runner.merge(old, new, ["# Benchmark results"])
    assert kept in text
    assert gone not in text
    for title, body in new:
        assert f"## {title}\n\n{body}" in text
