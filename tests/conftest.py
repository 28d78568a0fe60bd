"""Shared fixtures and hooks: throwaway PostgreSQL servers, a test CA, CI strictness.

Constants and helpers live in ``tests/support/``; this file holds only fixtures and hooks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import pg
from tests.support.ci import IN_CI, need_root, unavailable, unit_tier_breach
from tests.support.pg import CNPG_HOST, RDS_HOST, ServerFactory


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.root``: the test needs root and unshare (skips locally, fails in CI).
    A test of the unit tier (``make test-unit``) may not start a server or need root."""
    breach = unit_tier_breach(item)
    if breach:
        pytest.fail(breach)
    if item.get_closest_marker("root") is not None:
        need_root()


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Every test starts with default structlog and no registered secrets."""
    from preflight import _logging

    _logging.reset()
    yield
    _logging.reset()


@pytest.fixture(scope="session")
def workspace() -> Iterator[Path]:
    """A directory the unprivileged server user can enter."""
    base = Path(tempfile.mkdtemp(prefix="preflight-tests-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def template(workspace: Path) -> pg.Template:
    if pg.pg_bindir() is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return pg.Template(workspace)


@pytest.fixture
def make_server(template: pg.Template) -> Iterator[ServerFactory]:
    """Build local servers for one test; all are destroyed afterwards."""
    made: list[pg.LocalServer] = []

    def make(
        name: str = "pg", *, start: bool = True, app: bool = True, **config: Any
    ) -> pg.LocalServer:
        server = pg.LocalServer(template, name, pg.ServerConfig(**config))
        made.append(server)
        if start or app:
            server.start()
        if app:
            pg.create_app_database(server)
            if not start:
                server.stop()
        return server

    yield make
    for server in made:
        server.destroy()


def _backend() -> str:
    choice = os.environ.get("PREFLIGHT_TEST_BACKEND", "auto")
    if choice == "auto":
        return "docker" if pg.docker_engine_answers() else "local"
    return choice


@pytest.fixture(scope="session")
def plain_server(template: pg.Template) -> Iterator[pg.LocalServer | pg.DockerServer]:
    """One plain server (password auth, no TLS) for the simple scenarios.

    testcontainers' PostgreSQL where a Docker engine answers, local binaries
    otherwise (``PREFLIGHT_TEST_BACKEND=local|docker`` forces one).
    """
    server: pg.LocalServer | pg.DockerServer
    if _backend() == "docker":
        server = pg.DockerServer()
    else:
        server = pg.LocalServer(template, "plain")
        server.start()
    pg.create_app_database(server)
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def ca() -> Any:
    import trustme

    return trustme.CA(organization_name="preflight test CA")


@pytest.fixture(scope="session")
def ca_file(ca: Any, workspace: Path) -> Path:
    path = workspace / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    os.chmod(path, 0o644)
    return path


@pytest.fixture(scope="session")
def server_tls(ca: Any) -> tuple[str, str]:
    """(certificate chain, key) for the names the scenarios use."""
    leaf = ca.issue_cert(RDS_HOST, CNPG_HOST, "localhost", "127.0.0.1")
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode()
    return chain, leaf.private_key_pem.bytes().decode()


_skipped: list[str] = []

# The longest files (in this order), started first: `make test` runs the suite on two
# workers a file at a time, in collection order (pytest-xdist, --dist loadfile
# --no-loadscope-reorder), and a long file handed out last would run alone at the end.
_FIRST = (
    "tests/test_benchmarks_smoke.py",
    "tests/integration/test_migrate_faults.py",
    "tests/integration/test_migrate.py",
    "tests/integration/test_agreement.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the longest files to the front (a stable sort keeps every other order)."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return _FIRST.index(path) if path in _FIRST else len(_FIRST)

    items.sort(key=rank)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: a scenario that did not run proves nothing."""
    if IN_CI and _skipped and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nCI=true: {len(_skipped)} test(s) skipped, failing the run: {_skipped}")
