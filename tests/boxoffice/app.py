"""The box office: aiohttp + asyncpg + the real ``stripe`` package.

Doors:

- ``POST /api/v2/checkout`` (header ``X-Box-Office-Key``, optional
  ``Idempotency-Key``), body ``{"show": 12, "tier": 34, "seats": 2,
  "email": "a@b.test", "name": "A", "quote": {"unit_cents": 2500,
  "total_cents": 5000}}`` -> ``200 {"checkout": {"id": "cs_...", "url": ...}}``;
  400 malformed, 401 key, 404 unknown show, 422 unknown tier / a quote that is
  not the database's price / a key reused with another body, 409 sold out,
  502 Stripe failed (nothing held; retry with the same key resumes).
- ``POST /hooks/stripe``: ``stripe.Webhook.construct_event`` (300 s), then
  the event id is claimed (primary key) in the same transaction as the work.
  Duplicates and unknown types answer 200, bad signatures 400.
- ``GET /healthz``; ``GET /_metrics`` (``in_flight``, ``peak_in_flight``,
  ``requests``) and ``POST /_metrics/reset``: the concurrency it really saw.

Capacity: ``tiers.taken`` counts held + sold seats; a checkout takes seats
under the tier's row lock, expiry / a failed payment / a refund give them
back once (each under the purchase's row lock, conditional on its state).

Bugs (``--bug`` or ``BOX_OFFICE_BUGS``): ``double-admit`` (no event dedup,
and the fulfilment trusts it: a duplicate delivery admits twice; no unique
seat constraint), ``oversell`` (no capacity check, no lock, no constraint),
``answer-500`` (every signed delivery does its work, commits, then answers 500, as
the seed's ``stripe-webhook`` does: a ``.catch`` that throws after the last write),
and two that break the same promise (a refund voids every seat) through
different stories: ``early-refund-dropped`` (a refund is matched only by the
payment intent the completion stored, so one that arrives first is
acknowledged and dropped) and ``one-seat-refund`` (a refund voids one
admission, not the purchase's every seat).

Shapes (``--metadata-key``, ``BOX_OFFICE_METADATA_KEY``): the Checkout
Session metadata key that carries the show id (default ``event_id``); a box
office that keys its sessions by its own name (``show_id``) is found by the
tool through ``[target.stripe] session_metadata_key``. ``--signatures refetch``
(``BOX_OFFICE_SIGNATURES``) is pretix's way: the signature is not checked, the
event is only a trigger, and its object is retrieved from Stripe and acted on
as Stripe has it now (no event-id dedup: every step is idempotent by state),
so a forged delivery gets 200 and changes nothing. A checkout without an
``Idempotency-Key`` header is a new purchase each time (``tests/boxoffice/
no-key.toml`` drives it that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg
import stripe
from aiohttp import web

BUGS = ("double-admit", "oversell", "answer-500", "early-refund-dropped", "one-seat-refund")
TOLERANCE = 300
MAX_SEATS = 20
STRIPE_DEADLINE = 8.0
HOLDING = ("open", "awaiting", "paid")


def ddl(bugs: frozenset[str]) -> str:
    capacity = "" if "oversell" in bugs else ", check (taken <= capacity)"
    seats = "" if "double-admit" in bugs else ", unique (purchase_id, seat)"
    return f"""
create table if not exists shows (
    id serial primary key, code text unique, title text not null);
create table if not exists tiers (
    id serial primary key, show_id integer not null references shows(id), code text,
    name text not null, price_cents integer not null check (price_cents >= 0),
    capacity integer not null check (capacity >= 0),
    taken integer not null default 0 check (taken >= 0){capacity});
create table if not exists purchases (
    id serial primary key, show_id integer not null references shows(id),
    tier_id integer not null references tiers(id), seats integer not null check (seats > 0),
    unit_cents integer not null, email text not null, name text,
    state text not null default 'open', idem_key text unique, fingerprint text,
    stripe_session text unique, checkout_url text, payment_intent text,
    created_at timestamptz not null default now());
create index if not exists purchases_show on purchases(show_id);
create table if not exists admissions (
    id serial primary key, purchase_id integer not null references purchases(id),
    show_id integer not null, tier_id integer not null references tiers(id),
    seat integer not null, status text not null default 'valid'{seats});
create index if not exists admissions_tier on admissions(tier_id);
create table if not exists stripe_events (
    id text primary key, type text not null, received_at timestamptz not null default now());
"""


class Problem(Exception):
    """An answer other than 200: its status and a message that says the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def problem(status: int, message: str) -> web.Response:
    return web.json_response({"problem": message}, status=status)


@dataclass(frozen=True)
class Order:
    show: int
    tier: int
    seats: int
    email: str
    name: str | None
    unit_cents: int | None
    total_cents: int | None
    fingerprint: str


def _id(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Problem(400, f"{name} must be a positive integer id, not {value!r}")
    return value


def _cents(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Problem(400, f"{name} must be a whole number of cents >= 0, not {value!r}")
    return value


def parse_order(raw: bytes) -> Order:
    try:
        data = json.loads(raw)
    except ValueError:
        raise Problem(400, "the body is not JSON: send {show, tier, seats, email}") from None
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object {show, tier, seats, email}")
    seats = data.get("seats")
    if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS:
        raise Problem(400, f"seats must be a whole number 1..{MAX_SEATS}, not {seats!r}")
    email = data.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise Problem(400, f"email must be an email address, not {email!r}")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise Problem(400, "name must be a string")
    quote = data.get("quote") or {}
    if not isinstance(quote, dict):
        raise Problem(400, "quote must be an object {unit_cents, total_cents}")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return Order(show=_id(data.get("show"), "show"), tier=_id(data.get("tier"), "tier"),
                 seats=seats, email=email, name=name,
                 unit_cents=_cents(quote.get("unit_cents"), "quote.unit_cents"),
                 total_cents=_cents(quote.get("total_cents"), "quote.total_cents"),
                 fingerprint=hashlib.sha256(canonical.encode()).hexdigest())


@dataclass
class BoxOffice:
    database_url: str
    schema: str
    stripe_api_base: str
    stripe_api_key: str
    webhook_secret: str
    api_key: str
    bugs: frozenset[str] = frozenset()
    #: The session metadata key that carries the show id.
    metadata_key: str = "event_id"
    #: "verify": Stripe-Signature checked; "refetch": the event is a trigger, its object
    #: is retrieved from Stripe.
    signatures: str = "verify"
    pool_size: int = 20
    _pool: asyncpg.Pool | None = None
    _stripe: stripe.StripeClient | None = None
    _http: stripe.AIOHTTPClient | None = None
    _key_locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    in_flight: int = 0
    peak: int = 0
    requests: int = 0

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the box office is not started"
        return self._pool

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=1, max_size=self.pool_size, command_timeout=10,
            server_settings={"search_path": self.schema})
        async with self._pool.acquire() as conn:
            await conn.execute(f'create schema if not exists "{self.schema}"')
            await conn.execute(ddl(self.bugs))
        self._http = stripe.AIOHTTPClient(timeout=3)
        self._stripe = stripe.StripeClient(self.stripe_api_key,
                                           base_addresses={"api": self.stripe_api_base},
                                           http_client=self._http, max_network_retries=2)

    async def stop(self) -> None:
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.close_async()
        if self._pool is not None:
            await self._pool.close()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count, _database_errors],
                              client_max_size=64 * 1024)
        app.router.add_post("/api/v2/checkout", self.checkout)
        app.router.add_post("/hooks/stripe", self.hook)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/_metrics", self.metrics)
        app.router.add_post("/_metrics/reset", self.reset_metrics)

        async def lifecycle(_: web.Application) -> AsyncIterator[None]:
            await self.start()
            yield
            await self.stop()

        app.cleanup_ctx.append(lifecycle)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "service": "box office", "bugs": sorted(self.bugs)})

    @web.middleware
    async def _count(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if request.path in ("/_metrics", "/_metrics/reset", "/healthz"):
            return await handler(request)
        self.in_flight += 1
        self.requests += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def metrics(self, request: web.Request) -> web.Response:
        return web.json_response({"in_flight": self.in_flight, "peak_in_flight": self.peak,
                                  "requests": self.requests})

    async def reset_metrics(self, request: web.Request) -> web.Response:
        self.peak, self.requests = self.in_flight, 0
        return web.json_response({"ok": True})

    # -------------------------------------------------------------- checkout
    @contextlib.asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._key_locks.get(key, (asyncio.Lock(), 0))
        self._key_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._key_locks[key]
            if users == 1:
                del self._key_locks[key]
            else:
                self._key_locks[key] = (lock, users - 1)

    async def checkout(self, request: web.Request) -> web.Response:
        sent = request.headers.get("X-Box-Office-Key", "")
        if not hmac.compare_digest(sent.encode(), self.api_key.encode()):
            return problem(401, "missing or wrong X-Box-Office-Key header")
        key = request.headers.get("Idempotency-Key")
        try:
            if key is not None and not 1 <= len(key) <= 255:
                raise Problem(400, "Idempotency-Key must be 1..255 characters")
            order = parse_order(await request.read())
            if key is None:
                return await self._open(order, None)
            async with self._key_lock(key):
                return await self._keyed(order, key)
        except Problem as exc:
            return problem(exc.status, str(exc))

    async def _keyed(self, order: Order, key: str) -> web.Response:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "select id, fingerprint, state, stripe_session, checkout_url from purchases "
                "where idem_key = $1 for update", key)
            if row is None:
                pass
            elif row["fingerprint"] != order.fingerprint:
                raise Problem(422, "this Idempotency-Key was used for another checkout: "
                                   "use a new key")
            elif row["stripe_session"] is not None:
                return _answer(row["stripe_session"], row["checkout_url"])
            elif row["state"] == "failed":  # Stripe failed last time: take the seats again
                await self._take(conn, order.tier, order.seats)
                await conn.execute("update purchases set state = 'open' where id = $1", row["id"])
            elif row["state"] != "open":
                raise Problem(409, f"this checkout is {row['state']}: use a new Idempotency-Key")
        if row is None:
            return await self._open(order, key)
        return await self._session(row["id"])

    async def _take(self, conn: asyncpg.Connection, tier: int, seats: int) -> None:
        """Hold ``seats`` of ``tier`` (inside the caller's transaction)."""
        if "oversell" in self.bugs:  # "the page showed seats left": no check, no lock
            await conn.execute("update tiers set taken = taken + $2 where id = $1", tier, seats)
            return
        row = await conn.fetchrow("select capacity, taken from tiers where id = $1 for update",
                                  tier)
        if row is None or row["taken"] + seats > row["capacity"]:
            raise Problem(409, f"tier {tier} has not {seats} seats left: choose fewer seats")
        await conn.execute("update tiers set taken = taken + $2 where id = $1", tier, seats)

    async def _open(self, order: Order, key: str | None) -> web.Response:
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("select true from shows where id = $1", order.show):
                raise Problem(404, f"no show {order.show}: check show")
            price = await conn.fetchval("select price_cents from tiers where id = $1 "
                                        "and show_id = $2", order.tier, order.show)
            if price is None:
                raise Problem(422, f"show {order.show} has no tier {order.tier}")
            if order.unit_cents is not None and order.unit_cents != price:
                raise Problem(422, f"a seat of tier {order.tier} costs {price}, not "
                                   f"{order.unit_cents}: reload the show and check out again")
            if order.total_cents is not None and order.total_cents != price * order.seats:
                raise Problem(422, f"the total is {price * order.seats}, not {order.total_cents}: "
                                   "reload the show and check out again")
            try:
                async with conn.transaction():
                    await self._take(conn, order.tier, order.seats)
                    purchase = await conn.fetchval(
                        "insert into purchases (show_id, tier_id, seats, unit_cents, email, name, "
                        "idem_key, fingerprint) values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
                        order.show, order.tier, order.seats, price, order.email, order.name, key,
                        order.fingerprint)
            except asyncpg.UniqueViolationError:
                raise Problem(409, "a checkout with this Idempotency-Key is in progress: "
                                   "retry with the same key") from None
        return await self._session(purchase)

    async def _session(self, purchase: int) -> web.Response:
        """Create (or, with Stripe's idempotency, find again) the purchase's Checkout Session."""
        p = await self.pool.fetchrow(
            "select p.*, t.name as tier_name from purchases p join tiers t on t.id = p.tier_id "
            "where p.id = $1", purchase)
        metadata = {"purchase_id": str(purchase), self.metadata_key: str(p["show_id"]),
                    "ticket_type_id": str(p["tier_id"]), "quantity": str(p["seats"])}
        params = {
            "mode": "payment",
            "line_items": [{"quantity": p["seats"], "price_data": {
                "currency": "usd", "unit_amount": p["unit_cents"],
                "product_data": {"name": p["tier_name"]}}}],
            "customer_email": p["email"], "client_reference_id": str(purchase),
            "metadata": metadata, "payment_intent_data": {"metadata": {"purchase_id": str(purchase)}},
            "success_url": "http://127.0.0.1/thanks?session={CHECKOUT_SESSION_ID}",
            "cancel_url": f"http://127.0.0.1/shows/{p['show_id']}",
        }
        assert self._stripe is not None
        client = self._stripe
        try:
            async with asyncio.timeout(STRIPE_DEADLINE):
                session = await client.v1.checkout.sessions.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": f"boxoffice-{self.schema}-purchase-{purchase}"})
        except (stripe.StripeError, TimeoutError) as exc:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._leave(conn, purchase, "failed", ("open",))
            what = type(exc).__name__
            return problem(502, f"Stripe failed ({what}); no seats are held: retry with the "
                                "same Idempotency-Key")
        await self.pool.execute("update purchases set stripe_session = $2, checkout_url = $3 "
                                "where id = $1", purchase, session.id, session.url)
        return _answer(session.id, session.url)

    async def _leave(self, conn: asyncpg.Connection, purchase: int, state: str,
                     only_from: tuple[str, ...]) -> str:
        """Move a purchase out of a holding state, giving its seats back once."""
        row = await conn.fetchrow("select state, tier_id, seats from purchases where id = $1 "
                                  "for update", purchase)
        if row is None or row["state"] not in only_from:
            return f"already {row['state'] if row else 'gone'}"
        await conn.execute("update purchases set state = $2 where id = $1", purchase, state)
        if row["state"] in HOLDING:
            await conn.execute("update tiers set taken = taken - $2 where id = $1",
                               row["tier_id"], row["seats"])
        return state

    # -------------------------------------------------------------- webhook
    async def hook(self, request: web.Request) -> web.Response:
        answer = await self._hook(request)
        if "answer-500" in self.bugs and answer.status == 200:  # committed, then it throws
            return problem(500, "internal error: TypeError: .catch is not a function")
        return answer

    async def _hook(self, request: web.Request) -> web.Response:
        payload = await request.read()
        if self.signatures == "refetch":
            return await self._refetch_hook(payload)
        header = request.headers.get("Stripe-Signature")
        if not header:
            return problem(400, "no Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(payload, header, self.webhook_secret,
                                                   tolerance=TOLERANCE)
            kind, obj, event_id = event["type"], event["data"]["object"].to_dict(), event["id"]
        except stripe.SignatureVerificationError as exc:
            return problem(400, f"signature refused: {exc.user_message or exc}")
        except (ValueError, KeyError, TypeError, AttributeError):
            return problem(400, "the payload is not a Stripe event (id, type, data.object)")
        handler = self.handlers.get(kind)
        if handler is None:
            return web.json_response({"received": True, "ignored": kind})
        async with self.pool.acquire() as conn, conn.transaction():
            if "double-admit" not in self.bugs:
                claimed = await conn.fetchval(
                    "insert into stripe_events (id, type) values ($1, $2) on conflict do nothing "
                    "returning true", event_id, kind)
                if not claimed:
                    return web.json_response({"received": True, "duplicate": True})
            outcome = await handler(self, conn, obj)
        return web.json_response({"received": True, "outcome": outcome})

    async def _refetch_hook(self, payload: bytes) -> web.Response:
        """``--signatures refetch``: whatever the delivery says, act on Stripe's object."""
        try:
            event = json.loads(payload)
            kind, obj = event["type"], event["data"]["object"]
            if not isinstance(kind, str) or not isinstance(obj.get("id"), str):
                raise TypeError(kind)
        except (ValueError, KeyError, TypeError, AttributeError):
            return problem(400, "the payload is not a Stripe event (id, type, data.object)")
        handler = self.handlers.get(kind)
        if handler is None:
            return web.json_response({"received": True, "ignored": kind})
        try:
            current = await self._current(kind, obj["id"])
        except (stripe.StripeError, TimeoutError) as exc:
            return problem(502, f"Stripe failed ({type(exc).__name__}): redeliver")
        if current is None:
            return web.json_response({"received": True, "ignored": "not so at Stripe"})
        async with self.pool.acquire() as conn, conn.transaction():
            outcome = await handler(self, conn, current)
        return web.json_response({"received": True, "outcome": outcome})

    async def _current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """The event's object as Stripe has it now, if it is in the state the event
        claims; None otherwise (or when Stripe does not know it)."""
        assert self._stripe is not None
        v1 = self._stripe.v1
        try:
            async with asyncio.timeout(STRIPE_DEADLINE):
                if kind == "charge.refunded":
                    return (await v1.charges.retrieve_async(object_id)).to_dict()
                session = (await v1.checkout.sessions.retrieve_async(object_id)).to_dict()
                if kind == "checkout.session.expired":
                    return session if session.get("status") == "expired" else None
                if kind == "checkout.session.async_payment_failed":
                    intent = session.get("payment_intent")
                    if not isinstance(intent, str):
                        return None
                    status = (await v1.payment_intents.retrieve_async(intent)).status
                    return session if status == "requires_payment_method" else None
                return session  # completed / async succeeded: _completed reads payment_status
        except stripe.InvalidRequestError:
            return None

    async def _purchase(self, conn: asyncpg.Connection, obj: dict[str, Any], *,
                        session: str | None = None, intent: str | None = None) -> int | None:
        """The purchase an event is about: our metadata (if it agrees with the session),
        else the session id, else the payment intent."""
        meta = obj.get("metadata") or {}
        if str(meta.get("purchase_id", "")).isdigit():
            found = await conn.fetchval(
                "select id from purchases where id = $1 and (stripe_session is null "
                "or $2::text is null or stripe_session = $2)", int(meta["purchase_id"]), session)
            if found is not None:
                return int(found)
        for column, value in (("stripe_session", session), ("payment_intent", intent)):
            if value:
                found = await conn.fetchval(f"select id from purchases where {column} = $1", value)
                if found is not None:
                    return int(found)
        return None

    async def _completed(self, conn: asyncpg.Connection, obj: dict[str, Any]) -> str:
        """The session completed (or its delayed payment succeeded): admit if it is
        paid, as the event's own snapshot says; else keep the seats and wait."""
        purchase = await self._purchase(conn, obj, session=obj.get("id"))
        if purchase is None:
            return "unknown purchase"
        intent = obj.get("payment_intent")
        await conn.execute("update purchases set stripe_session = coalesce(stripe_session, $2), "
                           "payment_intent = coalesce(payment_intent, $3) where id = $1",
                           purchase, obj.get("id"), intent if isinstance(intent, str) else None)
        if obj.get("payment_status") != "paid":
            state = await conn.fetchval("update purchases set state = 'awaiting' where id = $1 "
                                        "and state = 'open' returning state", purchase)
            return "awaiting payment" if state else "not paid"
        return await self._admit(conn, purchase)

    async def _admit(self, conn: asyncpg.Connection, purchase: int) -> str:
        if "double-admit" in self.bugs:  # the event dedup is "the" guard, and it is gone
            await conn.execute("update purchases set state = 'paid' where id = $1", purchase)
        else:
            row = await conn.fetchrow("select state, tier_id, seats from purchases where id = $1 "
                                      "for update", purchase)
            if row["state"] in ("paid", "refunded"):
                return f"already {row['state']}"
            if row["state"] not in HOLDING:  # released, yet Stripe says paid: retake if free
                taken = await conn.fetchval(
                    "update tiers set taken = taken + $2 where id = $1 "
                    "and taken + $2 <= capacity returning true", row["tier_id"], row["seats"])
                if not taken:
                    await conn.execute("update purchases set state = 'unseatable' where id = $1",
                                       purchase)
                    return "paid but sold out: refund it"
            await conn.execute("update purchases set state = 'paid' where id = $1", purchase)
        await conn.execute(
            "insert into admissions (purchase_id, show_id, tier_id, seat) "
            "select p.id, p.show_id, p.tier_id, s from purchases p, generate_series(1, p.seats) s "
            f"where p.id = $1{'' if 'double-admit' in self.bugs else ' on conflict do nothing'}",
            purchase)
        return "admitted"

    async def _async_failed(self, conn: asyncpg.Connection, obj: dict[str, Any]) -> str:
        purchase = await self._purchase(conn, obj, session=obj.get("id"))
        if purchase is None:
            return "unknown purchase"
        return await self._leave(conn, purchase, "payment_failed", ("open", "awaiting"))

    async def _expired(self, conn: asyncpg.Connection, obj: dict[str, Any]) -> str:
        purchase = await self._purchase(conn, obj, session=obj.get("id"))
        if purchase is None:
            return "unknown purchase"
        return await self._leave(conn, purchase, "expired", ("open", "awaiting"))

    async def _refunded(self, conn: asyncpg.Connection, obj: dict[str, Any]) -> str:
        amount, refunded = obj.get("amount"), obj.get("amount_refunded")
        if not (obj.get("refunded") is True or (isinstance(amount, int) and isinstance(
                refunded, int) and refunded >= amount > 0)):
            return "partial refund: admissions kept"
        intent = obj.get("payment_intent")
        # early-refund-dropped: "the completion stored the payment intent; refunds name it"
        found_by = {} if "early-refund-dropped" in self.bugs else obj
        purchase = await self._purchase(conn, found_by,
                                        intent=intent if isinstance(intent, str) else None)
        if purchase is None:
            return "unknown purchase"
        outcome = await self._leave(conn, purchase, "refunded",
                                    (*HOLDING, "failed", "expired", "payment_failed"))
        if "one-seat-refund" in self.bugs:  # "a refund is one ticket": the first seat only
            await conn.execute("update admissions set status = 'void' where id = (select min(id) "
                               "from admissions where purchase_id = $1 and status = 'valid')",
                               purchase)
        else:
            await conn.execute("update admissions set status = 'void' where purchase_id = $1 "
                               "and status = 'valid'", purchase)
        return outcome

    handlers: ClassVar[dict[str, Callable[[BoxOffice, asyncpg.Connection, dict[str, Any]],
                                          Awaitable[str]]]] = {
        "checkout.session.completed": _completed,
        "checkout.session.async_payment_succeeded": _completed,  # its session is paid now
        "checkout.session.async_payment_failed": _async_failed,
        "checkout.session.expired": _expired,
        "charge.refunded": _refunded,
    }


def _answer(session: str, url: str | None) -> web.Response:
    return web.json_response({"checkout": {"id": session, "url": url}})


@web.middleware
async def _database_errors(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """A refused write is a bug (500); any other database failure is a 503 (retry)."""
    try:
        return await handler(request)
    except asyncpg.IntegrityConstraintViolationError as exc:
        return problem(500, f"internal error: {type(exc).__name__}")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        return problem(503, f"the database is unavailable ({type(exc).__name__}): retry")
