"""The benchmarks run (with tiny counts), so they cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import chaos, migrate_chaos, tradeoff
from benchmarks import run as runner
from preflight._retry import KNOCK_GAP
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
        "## 2b. Logins a starting server sees",
        "## 3. The herd",
        "## 3b. Jitter",
    ):
        assert heading in text
    assert "| preflight |" in text
    assert "| exit codes | {0: 5} | {0: 5} |" in text


@pytest.mark.slow
def test_tradeoff_smoke(tmp_path: Path) -> None:
    """The knock-gap trade-off runs this checkout beside a copy that knocks less often."""
    text = _bench(tmp_path / "results.md", "tradeoff", "--smoke")
    assert "## 3c. The herd against the notice target" in text
    low, high = KNOCK_GAP
    assert f"| now, {low:g}-{high:g} s (this checkout) |" in text
    wider_low, wider_high = tradeoff.WIDER[0]
    assert f"| {wider_low:g}-{wider_high:g} s |" in text


def _chaos(tmp_path: Path, part: str, runs: int, kept: str) -> str:
    """One smoke run of a chaos part, over a RESULTS.md holding only the section ``kept``."""
    if pgbouncer_binary() is None:
        unavailable("pgbouncer (Debian package pgbouncer) is not installed")
    out = tmp_path / "results.md"
    out.write_text(f"# Benchmark results\n\n## {kept}\n\nkept as it was\n")
    return _bench(out, part, "--smoke", "--chaos-runs", str(runs))


@pytest.mark.slow
@pytest.mark.root
def test_chaos_smoke(tmp_path: Path) -> None:
    """A few chaos runs (one per kind of fault) complete and write the chaos section."""
    runs = len(chaos.KINDS)
    text = _chaos(tmp_path, "chaos", runs, "Migrations")
    assert "## 5. Chaos: randomised fault injection" in text
    assert f"{runs} runs over {runs} kinds of fault" in text
    for target in ("| false ready: 0 |", "| retryable faults that ended fatal: 0 |"):
        assert target in text
    assert "## Migrations\n\nkept as it was" in text


@pytest.mark.slow
@pytest.mark.root
def test_migrate_chaos_smoke(tmp_path: Path) -> None:
    """One migrate chaos run per kind of fault completes and writes its section with
    every target row, keeping the other sections."""
    runs = len(migrate_chaos.KINDS)
    text = _chaos(tmp_path, "migrate-chaos", runs, "5. Chaos")
    assert f"## {migrate_chaos.TITLE}" in text
    assert f"{runs} runs over {runs} kinds of fault" in text
    for target in (
        "| double-applied migrations: 0 |",
        "| runners exiting 0 after a lost lock or a failed follow-up: 0 |",
        "| advisory locks left behind: 0 |",
        "| deadline overrun ≤ 1 s",
    ):
        assert target in text
    assert "## 5. Chaos\n\nkept as it was" in text


@pytest.mark.slow
def test_migrate_cost_smoke(tmp_path: Path) -> None:
    """The migrate cost benchmark runs (two rounds) and reports both comparisons."""
    if not Path("/usr/bin/time").exists():
        unavailable("GNU time (Debian package time) is not installed")
    text = _bench(tmp_path / "results.md", "migrate-cost", "--smoke")
    assert "## 7. The migrate runner" in text
    for row in ("`manage.py migrate` |", "`preflight.django migrate` |", "migrate --check` |"):
        assert row in text
    assert "the runner within 5 % of `manage.py migrate`" in text


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
