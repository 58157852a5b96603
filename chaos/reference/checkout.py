"""The checkout door: ``POST /functions/v1/create-checkout-session``, the seed's API.

Request (JSON, headers ``apikey: KEY`` and ``Authorization: Bearer KEY``,
optional ``Idempotency-Key``)::

    {"eventId": "...", "tickets": [{"ticketTypeId": "...", "quantity": 2, "price": 2500}],
     "customerEmail": "a@b.test", "customerName": "A B", "total": 5000}

Answer ``200 {"url": ..., "sessionId": ...}``; ``400`` malformed, ``401`` wrong
key, ``404`` unknown event, ``409`` sold out (or the same key in flight in
another process), ``422`` unknown ticket type, a price or total that is not
the database's, or a key reused with a different body; ``502`` Stripe failed
(nothing held, retry), ``503`` database unavailable.

How a careful team writes it:
1. Price from the database; the client's ``price``/``total`` are only checked.
2. One short transaction takes the units (a conditional update per ticket
   type: the hold can never exceed capacity), creates the order (pending)
   and claims the Idempotency-Key. No network call inside a transaction.
3. Create the Checkout Session through the real ``stripe`` client with our
   own Idempotency-Key (``checkout-<schema>-order-<id>``: unique per database,
   since several environments may share one Stripe account), so Stripe's
   replay protects a retried call too.
4. Store the session on the order and the answer under the key.
If Stripe fails, the hold is given back at once and the answer is 502; a
retry with the same key resumes the same order (and the same Stripe key).
Requests with one key are serialised in the process (a lock per key), so a
double-click gets the same session twice; across processes the key's
primary key lets only one in (the other gets 409 and retries).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chaos.reference import orders
from chaos.reference.orders import Line, SoldOut
from chaos.reference.service import Service, StripeRejected, StripeUnavailable, error, log

MAX_LINES = 10
MAX_QUANTITY = 20
MAX_KEY_LENGTH = 255


class Refused(Exception):
    """A request the door answers with a 4xx; ``status`` and a message that says the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Wanted:
    """One line as the client asked for it."""

    ticket_type_id: str
    quantity: int
    price: int | None


@dataclass(frozen=True)
class CheckoutRequest:
    event_id: str
    tickets: tuple[Wanted, ...]
    email: str
    name: str | None
    total: int | None
    #: sha256 of the canonical JSON body: "same body" for the Idempotency-Key.
    fingerprint: str


@dataclass(frozen=True)
class Priced:
    lines: list[Line]
    amount: int
    #: Units left per ticket type when priced (what the ``oversell`` team checks).
    available: dict[str, int]


def _int(value: Any, field: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(400, f"{field} must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise Refused(400, f"{field} is {value}; it must be {bound}")
    return value


def _text(value: Any, field: str, *, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refused(400, f"{field} must be a non-empty string")
    if len(value) > limit:
        raise Refused(400, f"{field} is longer than {limit} characters")
    return value


def parse_request(body: bytes) -> CheckoutRequest:
    """The seed's payload, validated; Refused(400) names the bad field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON: send {eventId, tickets, customerEmail, "
                           "customerName, total}") from None
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object: {eventId, tickets, customerEmail, "
                           "customerName, total}")
    event_id = _text(data.get("eventId"), "eventId")
    tickets = data.get("tickets")
    if not isinstance(tickets, list) or not 1 <= len(tickets) <= MAX_LINES:
        raise Refused(400, f"tickets must be a list of 1..{MAX_LINES} "
                           "{ticketTypeId, quantity, price}")
    wanted = []
    for i, item in enumerate(tickets):
        if not isinstance(item, dict):
            raise Refused(400, f"tickets[{i}] must be an object {{ticketTypeId, quantity, price}}")
        price = item.get("price")
        wanted.append(Wanted(
            ticket_type_id=_text(item.get("ticketTypeId"), f"tickets[{i}].ticketTypeId"),
            quantity=_int(item.get("quantity"), f"tickets[{i}].quantity", low=1, high=MAX_QUANTITY),
            price=None if price is None else _int(price, f"tickets[{i}].price", low=0),
        ))
    if len({w.ticket_type_id for w in wanted}) != len(wanted):
        raise Refused(400, "tickets lists a ticketTypeId twice: list each once with its quantity")
    email = _text(data.get("customerEmail"), "customerEmail", limit=254)
    if "@" not in email:
        raise Refused(400, f"customerEmail {email!r} is not an email address")
    name = data.get("customerName")
    total = data.get("total")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return CheckoutRequest(
        event_id=event_id, tickets=tuple(wanted), email=email,
        name=None if name is None else _text(name, "customerName"),
        total=None if total is None else _int(total, "total", low=0),
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
    )


async def _ticket_types(conn: asyncpg.Connection, req: CheckoutRequest) -> dict[str, Any]:
    rows = await conn.fetch(
        "select e.id as event_id, tt.id, tt.name, tt.price_cents, tt.capacity, tt.reserved "
        "from events e left join ticket_types tt on tt.event_id = e.id and tt.id = any($2::text[]) "
        "where e.id = $1",
        req.event_id, [w.ticket_type_id for w in req.tickets],
    )
    if not rows:
        raise Refused(404, f"no event {req.event_id!r}: check eventId")
    found = {row["id"]: row for row in rows if row["id"] is not None}
    for w in req.tickets:
        if w.ticket_type_id not in found:
            raise Refused(422, f"event {req.event_id!r} has no ticket type {w.ticket_type_id!r}")
    return found


async def price_from_database(conn: asyncpg.Connection, req: CheckoutRequest) -> Priced:
    """The careful version: the database sets every price; a client price or
    total that differs is refused, because the page the buyer saw is stale or
    tampered with."""
    found = await _ticket_types(conn, req)
    lines = []
    for w in req.tickets:
        row = found[w.ticket_type_id]
        if w.price is not None and w.price != row["price_cents"]:
            raise Refused(422, f"the price of {w.ticket_type_id!r} is {row['price_cents']}, not "
                               f"{w.price}: reload the event page and check out again")
        lines.append(Line(w.ticket_type_id, w.quantity, row["price_cents"], row["name"]))
    amount = sum(line.quantity * line.unit_price for line in lines)
    if req.total is not None and req.total != amount:
        raise Refused(422, f"total is {req.total} but the tickets cost {amount}: reload the "
                           "event page and check out again")
    return Priced(lines, amount, {k: r["capacity"] - r["reserved"] for k, r in found.items()})


async def price_from_client(conn: asyncpg.Connection, req: CheckoutRequest) -> Priced:
    """Bug ``trust-client-price``: the page already shows the price, so the
    handler charges what the page sent."""
    found = await _ticket_types(conn, req)
    lines = [Line(w.ticket_type_id, w.quantity,
                  w.price if w.price is not None else found[w.ticket_type_id]["price_cents"],
                  found[w.ticket_type_id]["name"]) for w in req.tickets]
    amount = sum(line.quantity * line.unit_price for line in lines)
    return Priced(lines, amount, {k: r["capacity"] - r["reserved"] for k, r in found.items()})


def _check_available(priced: Priced) -> None:
    """Bug ``oversell``'s check: availability as read when pricing."""
    for line in priced.lines:
        if priced.available.get(line.ticket_type_id, 0) < line.quantity:
            raise SoldOut(line.ticket_type_id)


class CheckoutDoor:
    """The endpoint, with the pricing, hold and idempotency steps the bugs choose."""

    def __init__(self, service: Service) -> None:
        self.service = service
        bugs = service.bugs
        self.price = price_from_client if "trust-client-price" in bugs else price_from_database
        self.honours_key = "checkout-not-idempotent" not in bugs
        #: False for ``oversell``: check when pricing, take after Stripe answered.
        self.holds_first = "oversell" not in bugs

    def _authorised(self, request: Request) -> bool:
        key = self.service.anon_key
        apikey = request.headers.get("apikey", "")
        bearer = request.headers.get("authorization", "")
        return hmac.compare_digest(apikey, key) and hmac.compare_digest(bearer, f"Bearer {key}")

    async def __call__(self, request: Request) -> Response:
        if not self._authorised(request):
            return error(401, "missing or wrong API key: send headers apikey: KEY and "
                              "Authorization: Bearer KEY with the service's anon key")
        key = request.headers.get("idempotency-key")
        try:
            if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
                raise Refused(400, f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters")
            req = parse_request(await request.body())
            base = str(request.base_url).rstrip("/")
            if key is not None and self.honours_key:
                async with self.service.key_locks.hold(key):
                    return await self._with_key(req, key, base)
            return await self._open(req, None, base)
        except Refused as exc:
            return error(exc.status, exc.message)

    async def _with_key(self, req: CheckoutRequest, key: str, base: str) -> Response:
        claim = await self.service.pool.fetchrow(
            "select request_hash, order_id, status_code, response from checkout_requests "
            "where idempotency_key = $1", key)
        if claim is None:
            return await self._open(req, key, base)
        if claim["request_hash"] != req.fingerprint:
            raise Refused(422, "this Idempotency-Key was used with a different request: "
                               "use a new key for a new checkout")
        if claim["response"] is not None:
            return JSONResponse(json.loads(claim["response"]), status_code=claim["status_code"])
        return await self._resume(req, key, claim["order_id"], base)

    async def _open(self, req: CheckoutRequest, key: str | None, base: str) -> Response:
        async with self.service.pool.acquire() as conn:
            priced = await self.price(conn, req)
            try:
                async with conn.transaction():
                    if not self.holds_first:
                        _check_available(priced)
                    order_id = await orders.create(
                        conn, event_id=req.event_id, lines=priced.lines, amount=priced.amount,
                        email=req.email, name=req.name, idempotency_key=key,
                        request_hash=req.fingerprint)
                    if self.holds_first:
                        # Last, so the ticket type's row (every buyer's hot spot) is
                        # locked only for this update and the commit.
                        await orders.reserve(conn, priced.lines)
            except SoldOut as exc:
                raise Refused(409, f"ticket type {exc.ticket_type_id!r} is sold out: "
                                   "choose fewer tickets or another type") from None
            except asyncpg.UniqueViolationError:
                raise Refused(409, "a checkout with this Idempotency-Key is in progress: "
                                   "retry in a moment with the same key") from None
        return await self._session(req, key, order_id, priced.lines, base)

    async def _resume(self, req: CheckoutRequest, key: str, order_id: int,
                      base: str) -> Response:
        """The key's first attempt did not finish (Stripe failed, or the process
        died): carry on with the same order, and the same Stripe key."""
        async with self.service.pool.acquire() as conn, conn.transaction():
            order = await orders.lock(conn, order_id)
            assert order is not None  # checkout_requests.order_id references orders
            lines = await _named_lines(conn, order_id)
            if order["stripe_session_id"] is not None:
                url = await conn.fetchval("select checkout_url from orders where id = $1",
                                          order_id)
                return await self._store(conn, key, order_id, order["stripe_session_id"], url)
            if order["status"] == "failed":
                try:
                    if self.holds_first:
                        await orders.reserve(conn, lines)
                    else:
                        _check_available(await self.price(conn, req))
                except SoldOut as exc:
                    raise Refused(409, f"ticket type {exc.ticket_type_id!r} is sold out: "
                                       "choose fewer tickets or another type") from None
                await conn.execute("update orders set status = 'pending', updated_at = now() "
                                   "where id = $1", order_id)
            elif order["status"] != "pending":
                raise Refused(409, f"this checkout is {order['status']}: use a new "
                                   "Idempotency-Key to check out again")
        return await self._session(req, key, order_id, lines, base)

    async def _session(self, req: CheckoutRequest, key: str | None, order_id: int,
                       lines: list[Line], base: str) -> Response:
        service = self.service
        params = _session_params(req, order_id, lines, base)
        try:
            session = await service.call_stripe(
                "creating the Checkout Session",
                lambda: service.stripe.v1.checkout.sessions.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": f"checkout-{service.schema}-order-{order_id}"}),
            )
        except (StripeUnavailable, StripeRejected) as exc:
            async with service.pool.acquire() as conn, conn.transaction():
                if self.holds_first:
                    await orders.release(conn, order_id, "failed", only_from=("pending",))
                else:  # nothing was taken yet
                    await conn.execute("update orders set status = 'failed' where id = $1",
                                       order_id)
            log.warning("checkout failed at Stripe", order_id=order_id, error=str(exc))
            retry = "retry with the same Idempotency-Key" if key else "retry"
            return error(502, f"{exc}; no tickets are held and nothing was charged: {retry}")
        async with service.pool.acquire() as conn, conn.transaction():
            if not self.holds_first:
                await orders.take_unchecked(conn, lines)
            return await self._store(conn, key, order_id, session.id, session.url)

    @staticmethod
    async def _store(conn: asyncpg.Connection, key: str | None, order_id: int, session_id: str,
                     url: str | None) -> Response:
        """Put the session on the order and the answer under the key (one statement)."""
        answer = {"url": url, "sessionId": session_id}
        await conn.execute(
            "with o as (update orders set stripe_session_id = $2, checkout_url = $3, "
            "updated_at = now() where id = $1) "
            "update checkout_requests set status_code = 200, response = $5 "
            "where $4::text is not null and idempotency_key = $4",
            order_id, session_id, url, key, json.dumps(answer))
        return JSONResponse(answer)


async def _named_lines(conn: asyncpg.Connection, order_id: int) -> list[Line]:
    rows = await conn.fetch(
        "select oi.ticket_type_id, oi.quantity, oi.unit_price_cents, tt.name from order_items oi "
        "join ticket_types tt on tt.id = oi.ticket_type_id where oi.order_id = $1 "
        "order by oi.ticket_type_id", order_id)
    return [Line(r["ticket_type_id"], r["quantity"], r["unit_price_cents"], r["name"])
            for r in rows]


def _session_params(req: CheckoutRequest, order_id: int, lines: list[Line],
                    base: str) -> dict[str, Any]:
    """Checkout Session parameters; the same order always gives the same ones
    (Stripe refuses a reused Idempotency-Key with different parameters)."""
    metadata = {"order_id": str(order_id), "event_id": req.event_id}
    return {
        "mode": "payment",
        "line_items": [
            {"quantity": line.quantity,
             "price_data": {"currency": "usd", "unit_amount": line.unit_price,
                            "product_data": {"name": line.name or line.ticket_type_id}}}
            for line in sorted(lines, key=lambda x: x.ticket_type_id)
        ],
        "customer_email": req.email,
        "client_reference_id": str(order_id),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}/checkout/cancelled?order={order_id}",
    }
