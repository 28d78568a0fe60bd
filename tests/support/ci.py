"""What CI demands of a test: one that cannot run there fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


UNIT_TIER = Path(__file__).resolve().parents[1] / "unit"
SERVER_FIXTURES = frozenset({"workspace", "template", "plain_server", "make_server"})


def unit_tier_breach(item: pytest.Item) -> str | None:
    """Why a test of the unit tier (``make test-unit``) may not run as written, or None:
    it asks for a server fixture or needs root."""
    if not item.path.is_relative_to(UNIT_TIER):
        return None
    servers = sorted(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if servers:
        return f"a unit test starts no server: it asks for {', '.join(servers)}"
    if item.get_closest_marker("root") is not None:
        return "a unit test needs no root"
    return None
