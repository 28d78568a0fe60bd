"""Fixtures the migrate runner's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import appvenv, pg
from tests.support.migrate import CELLS


@pytest.fixture(scope="module")
def migrate_server(template: pg.Template) -> Iterator[pg.LocalServer]:
    """One server with the app's role for a module; each test makes its own database."""
    with pg.app_server(template, "migrate") as server:
        yield server


@pytest.fixture(params=list(CELLS))
def app_venv(request: pytest.FixtureRequest) -> appvenv.AppVenv:
    """The app's environment, once per cell: balancer's pins, and Django 5.2 + psycopg 3."""
    return CELLS[request.param]()
