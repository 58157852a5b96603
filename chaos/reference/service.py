"""What both doors of the reference service share: its settings, its database
pool, its Stripe client, and the one bounded way it calls Stripe.

The Stripe client is the real ``stripe`` package, async over httpx, pointed
at whatever ``--stripe-api-base`` names (the fake Stripe in every chaos run).
It is set up as a careful team sets it up: 2 network retries (Stripe's own
recommendation; POSTs carry our Idempotency-Key so a retry cannot create a
second object), a 3 s timeout per attempt, and an 8 s deadline over all of
them, so a hung Stripe costs a request 8 s, never forever. Every query is
bounded too (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import httpx
import stripe
import structlog
from starlette.responses import JSONResponse

T = TypeVar("T")

STRIPE_RETRIES = 2
STRIPE_ATTEMPT_TIMEOUT = 3.0
STRIPE_DEADLINE = 8.0
#: Every query of the service is bounded by this many seconds.
QUERY_TIMEOUT = 10.0

log = structlog.get_logger("reference")


class StripeUnavailable(Exception):
    """Stripe failed, timed out or was unreachable: the outcome may be unknown."""


class StripeRejected(Exception):
    """Stripe answered with a 4xx: asking again will not help."""


def error(status: int, message: str) -> JSONResponse:
    """Every error answer of the service: one JSON line that says what to do."""
    return JSONResponse({"error": message}, status_code=status)


class KeyLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class Service:
    """The running service: settings, and the pool and Stripe client its lifespan opens."""

    bugs: frozenset[str]
    webhook_secret: str
    anon_key: str
    stripe_api_base: str
    stripe_api_key: str
    schema: str
    database_url: str
    pool_size: int = 20
    key_locks: KeyLocks = field(default_factory=KeyLocks)
    _pool: asyncpg.Pool | None = None
    _stripe: stripe.StripeClient | None = None
    _http: stripe.HTTPXClient | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the service is not started"
        return self._pool

    @property
    def stripe(self) -> stripe.StripeClient:
        assert self._stripe is not None, "the service is not started"
        return self._stripe

    async def start(self, ddl: str) -> None:
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=2, max_size=self.pool_size,
            command_timeout=QUERY_TIMEOUT, server_settings={"search_path": self.schema},
        )
        async with self._pool.acquire() as conn:
            await conn.execute(f'create schema if not exists "{self.schema}"')
            await conn.execute(ddl)
        # Waiting for a free connection in a burst is not Stripe being slow:
        # only the deadline bounds it.
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(STRIPE_ATTEMPT_TIMEOUT, pool=STRIPE_DEADLINE))
        self._stripe = stripe.StripeClient(
            self.stripe_api_key, base_addresses={"api": self.stripe_api_base},
            http_client=self._http, max_network_retries=STRIPE_RETRIES,
        )

    async def stop(self) -> None:
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.close_async()  # type: ignore[no-untyped-call]
        if self._pool is not None:
            await self._pool.close()

    async def call_stripe(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Stripe call (with the client's retries) under the deadline;
        failures become StripeUnavailable or StripeRejected naming ``what``."""
        try:
            async with asyncio.timeout(STRIPE_DEADLINE):
                return await call()
        except TimeoutError:
            raise StripeUnavailable(f"Stripe did not answer {what} within "
                                    f"{STRIPE_DEADLINE:g} s") from None
        except stripe.InvalidRequestError as exc:
            raise StripeRejected(f"Stripe refused {what}: {_message(exc)}") from None
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe failed {what}: {type(exc).__name__}: "
                                    f"{_message(exc)}") from None


def _message(exc: stripe.StripeError) -> str:
    text = exc.user_message or str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]


def as_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object (or a plain dict) as plain data."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj)
