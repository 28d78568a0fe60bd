"""What CI demands of a test: one that cannot run there fails instead of skipping."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(why: str) -> None:
    """Skip on a laptop, fail in CI: a skipped database test proves nothing."""
    if IN_CI:
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)


def need_root() -> None:
    """Private mount and PID namespaces need root (CI runs as root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        unavailable("needs root and unshare for a private /etc/hosts or PID namespace")
