"""Failover on a CloudNativePG ``-rw`` name: a real streaming standby,
promoted while the check waits; and a replica cluster, whose designated
primary stays in recovery for good.

The ``-rw`` name resolves to the standby through a private /etc/hosts, as
the Service would point at the new primary after a failover.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pg
from tests.support.cli import base_env, isolated, preflight_command, spawn
from tests.support.pg import CNPG_HOST, ServerFactory

# The target is 1 s from promotion to exit 0 (measured in
# benchmarks/RESULTS.md, chaos "promotion"); a test on a shared machine allows more.
NOTICE_BOUND = 3.0
REPLICA_WARNING = "preflight.replica_cluster_suspected"
# A private /etc/hosts gives the -rw name its address.
pytestmark = pytest.mark.root


@pytest.fixture
def standby(make_server: ServerFactory, template: pg.Template) -> Iterator[pg.LocalServer]:
    """A hot standby of a primary that is then stopped (the failed old primary)."""
    primary = make_server("primary", settings={"wal_level": "replica"})
    replica = pg.LocalServer.standby_of(primary, template, "standby")
    try:
        replica.start()
        replica.wait_ready()
        with replica.admin() as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        primary.stop()
        yield replica
    finally:
        replica.destroy()


def rw_command(workdir: Path) -> list[str]:
    return isolated(preflight_command(), {CNPG_HOST: "127.0.0.1"}, workdir)


def rw_env(server: pg.LocalServer, timeout: str) -> dict[str, str]:
    return base_env(
        SQL_HOST=CNPG_HOST,
        SQL_PORT=str(server.port),
        SQL_DATABASE=pg.APP_DB,
        SQL_USER=pg.APP_USER,
        SQL_PASSWORD=pg.APP_PASSWORD,
        PREFLIGHT_TIMEOUT=timeout,
    )


def promote(server: pg.LocalServer) -> float:
    """Promote and wait until the server has left recovery; the monotonic time it did."""
    subprocess.run(server.server_command("promote", "-w"), check=True, capture_output=True)
    while True:
        with server.admin() as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,):
                return time.monotonic()
        time.sleep(0.005)


def test_promotion_noticed(standby: pg.LocalServer, tmp_path: Path) -> None:
    """A standby behind -rw promoted while the check waits: exit 0 soon after the promotion."""
    proc = spawn(rw_command(tmp_path), rw_env(standby, "60"))
    proc.wait_for_event("preflight.attempt_failed", count=3, reason="read_only")
    promoted = promote(standby)
    result = proc.finish(timeout=60)
    noticed = time.monotonic() - promoted
    assert result.code == 0, result.stderr
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert reasons == {"read_only"}, reasons
    assert result.event("preflight.ready")["in_recovery"] is False
    assert noticed <= NOTICE_BOUND, f"noticed {noticed:.2f} s after the promotion"


def test_replica_cluster_warning(standby: pg.LocalServer, tmp_path: Path) -> None:
    """-rw in recovery past half the deadline: one warning that it may be a replica cluster."""
    proc = spawn(rw_command(tmp_path), rw_env(standby, "4"))
    result = proc.finish(timeout=60)
    assert result.code == 10, result.stderr
    assert result.event("preflight.failed")["reason"] == "read_only"
    warnings = [e for e in result.events if e["event"] == REPLICA_WARNING]
    assert len(warnings) == 1, result.stderr
    assert warnings[0]["level"] == "warning"
    assert "replica cluster" in str(warnings[0].get("message", "")).lower()


def test_no_replica_warning_before_half_the_deadline(
    standby: pg.LocalServer, tmp_path: Path
) -> None:
    """A standby promoted early (a plain failover) gets no replica-cluster warning."""
    proc = spawn(rw_command(tmp_path), rw_env(standby, "60"))
    proc.wait_for_event("preflight.attempt_failed", reason="read_only")
    promote(standby)
    result = proc.finish(timeout=60)
    assert result.code == 0, result.stderr
    assert REPLICA_WARNING not in result.names()
