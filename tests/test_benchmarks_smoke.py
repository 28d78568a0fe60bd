"""The benchmarks run (with tiny counts), so they cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    """`python -m benchmarks.run --smoke` completes and reports every section."""
    if not Path("/usr/bin/time").exists():
        unavailable("GNU time (Debian package time) is not installed")
    out = tmp_path / "results.md"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=900,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    text = out.read_text()
    for heading in ("## 1. Start-up to ready", "## 2. Time to notice", "## 3. The herd"):
        assert heading in text
    assert "| preflight |" in text
    assert "exit codes | {0: 5}" in text
