"""Shared fixtures: a real PostgreSQL server for the whole session, and the
tool's own services running on loopback.

The server is embedded (started here, removed afterwards) unless
``CHAOS_TEST_DATABASE_URL`` names another one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.database import Database, embedded_server, throwaway_schema
from chaos.services import Service, running


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("CHAOS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with embedded_server() as url:
        yield url


@pytest.fixture
def schema(server_url: str) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    with throwaway_schema(server_url, "chaos_test") as name:
        yield name


@pytest.fixture
def db(server_url: str, schema: str) -> Iterator[Database]:
    database = Database(server_url, schema=schema)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def fake_stripe(tmp_path: Path) -> Iterator[Service]:
    with running("fake-stripe", [], workdir=tmp_path) as service:
        yield service
