"""The webhook door: ``POST /functions/v1/stripe-webhook``.

A delivery is verified first (``Stripe-Signature``, 300 s tolerance, through
``stripe.WebhookSignature``: 400 and no write otherwise), then handled in one
transaction that records the event id (primary key: a concurrent copy waits,
then sees it) together with the work, so an event is either processed and
recorded, or neither, and Stripe's retry finishes the job. Any order and any
number of copies give the same result:

- ``checkout.session.completed`` / ``checkout.session.async_payment_succeeded``:
  re-fetch the session from Stripe (as Stripe's fulfilment guide does: the
  event is a snapshot) and fulfil if ``payment_status`` is ``paid``; an unpaid
  completion keeps the hold and waits.
- ``checkout.session.async_payment_failed`` / ``checkout.session.expired``:
  give the hold back.
- ``payment_intent.succeeded``: link the payment intent to its order (found
  by our ``order_id`` metadata), so a refund can name it.
- ``charge.refunded`` (full refunds): void the tickets and give the units
  back; a refund for a payment no order knows yet is remembered, and the
  fulfilment then refunds instead of issuing tickets.
- Anything else: 2xx, nothing written. Duplicates: 2xx.

Answers: 200 ``{"received": true, ...}``; 400 bad signature or payload; 502
Stripe failed during the work (nothing recorded: redeliver); 503 database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import stripe
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chaos.reference import orders
from chaos.reference.schema import TRUSTS_EVENT_DEDUP
from chaos.reference.service import (
    Service,
    StripeRejected,
    StripeUnavailable,
    as_dict,
    error,
    log,
)

#: Seconds a signature stays valid (Stripe's libraries' default).
TOLERANCE = 300

DUPLICATE = {"received": True, "duplicate": True}

Event = dict[str, Any]


class BadDelivery(Exception):
    """A delivery that is not a correctly signed Stripe event: answer 400."""


# ---------------------------------------------------------------- event dedup
#
# Three hooks around the work: ``first`` before anything (outside a
# transaction), ``claim`` at the start of the work's transaction, ``done`` at
# its end. The correct version claims inside the transaction; each bug is the
# version another team wrote.

class Dedup:
    """Correct: a primary key claimed in the work's own transaction. A quick
    look first saves a Stripe round trip for the common, sequential duplicate."""

    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def pool(self) -> asyncpg.Pool:
        return self.service.pool

    async def first(self, event: Event) -> bool:
        seen = await self.pool.fetchval(
            "select true from processed_webhook_events where event_id = $1", event["id"])
        return not seen

    async def claim(self, conn: asyncpg.Connection, event: Event) -> bool:
        return await conn.fetchval(
            "insert into processed_webhook_events (event_id, type) values ($1, $2) "
            "on conflict do nothing returning true", event["id"], event["type"]) is not None

    async def done(self, conn: asyncpg.Connection, event: Event) -> None:
        return None


class NoDedup(Dedup):
    """Bug ``no-dedup``: every delivery is processed."""

    async def first(self, event: Event) -> bool:
        return True

    async def claim(self, conn: asyncpg.Connection, event: Event) -> bool:
        return True


class CheckThenInsert(Dedup):
    """Bug ``check-then-insert``: 'skip if seen' at the top, 'mark seen' at the
    end, no constraint. Copies in flight together all see nothing."""

    async def claim(self, conn: asyncpg.Connection, event: Event) -> bool:
        return True

    async def done(self, conn: asyncpg.Connection, event: Event) -> None:
        await conn.execute("insert into processed_webhook_events (event_id, type) values ($1, $2)",
                           event["id"], event["type"])


class FailOpenDedup(Dedup):
    """Bug ``fail-open-dedup``: record the event id, and never let a failure to
    record it drop a payment, so any error (a duplicate key too) is logged."""

    async def first(self, event: Event) -> bool:
        try:
            await self.pool.execute(
                "insert into processed_webhook_events (event_id, type) values ($1, $2)",
                event["id"], event["type"])
        except Exception as exc:
            log.warning("could not record webhook event; processing it anyway",
                        event_id=event["id"], error=type(exc).__name__)
        return True

    async def claim(self, conn: asyncpg.Connection, event: Event) -> bool:
        return True


class RecordedAtTheDoor(NoDedup):
    """Bug ``dedup-before-verify``: the door recorded the id before verifying
    (see :meth:`WebhookDoor.record_unverified`); the work does not look again."""


class PlainInsertDedup(Dedup):
    """Bug ``500-on-duplicate``: a plain INSERT; the primary key refuses a
    duplicate and the unique violation escapes as a 500. Nothing runs twice."""

    async def first(self, event: Event) -> bool:
        return True

    async def claim(self, conn: asyncpg.Connection, event: Event) -> bool:
        await conn.execute("insert into processed_webhook_events (event_id, type) values ($1, $2)",
                           event["id"], event["type"])
        return True


def _dedup_for(service: Service) -> Dedup:
    for bug, cls in (("no-dedup", NoDedup), ("check-then-insert", CheckThenInsert),
                     ("fail-open-dedup", FailOpenDedup), ("dedup-before-verify", RecordedAtTheDoor),
                     ("500-on-duplicate", PlainInsertDedup)):
        if bug in service.bugs:
            return cls(service)
    return Dedup(service)


# ---------------------------------------------------------------- the door

Prepare = Callable[[Event], Awaitable[Any]]
Apply = Callable[[asyncpg.Connection, Event, Any], Awaitable[str]]


class WebhookDoor:
    """The endpoint, with the verification, dedup, lookup and fulfilment steps
    the bugs choose."""

    def __init__(self, service: Service) -> None:
        self.service = service
        bugs = service.bugs
        #: 0 turns the age check off (``no-signature-tolerance``).
        self.tolerance = 0 if "no-signature-tolerance" in bugs else TOLERANCE
        self.dedup = _dedup_for(service)
        self.records_before_verify = "dedup-before-verify" in bugs
        self.acknowledges_first = "ack-before-commit" in bugs
        self.fulfil = orders.fulfil_unguarded if bugs & TRUSTS_EVENT_DEDUP else orders.fulfil
        self.checks_payment_status = "unpaid-fulfilled" not in bugs
        #: False for ``order-dependent``: only the payment intent the completion stored.
        self.finds_by_metadata = "order-dependent" not in bugs
        self.handlers: dict[str, tuple[Prepare | None, Apply]] = {
            "checkout.session.completed": (self._fetch_session, self._on_completed),
            "checkout.session.async_payment_succeeded": (self._fetch_session, self._on_completed),
            "checkout.session.async_payment_failed": (None, self._on_payment_failed),
            "checkout.session.expired": (None, self._on_expired),
            "payment_intent.succeeded": (None, self._on_payment_intent_succeeded),
            "charge.refunded": (None, self._on_charge_refunded),
        }

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        if self.records_before_verify:
            try:
                first = await self.record_unverified(body)
            except BadDelivery as exc:
                return error(400, str(exc))
            if not first:
                return JSONResponse(DUPLICATE)
        try:
            event = self.verify(body, request.headers.get("stripe-signature"))
        except BadDelivery as exc:
            return error(400, str(exc))
        if self.acknowledges_first:
            return JSONResponse({"received": True},
                                background=BackgroundTask(self._process_quietly, event))
        try:
            answer = await self.process(event)
        except StripeUnavailable as exc:
            log.warning("webhook not processed: Stripe failed", event_id=event["id"],
                        error=str(exc))
            return error(502, f"{exc}; the event was not processed: redeliver it")
        return JSONResponse(answer)

    def verify(self, body: bytes, header: str | None) -> Event:
        """The event, if ``header`` signs ``body`` with our secret recently enough."""
        if not header:
            raise BadDelivery("no Stripe-Signature header: deliveries must be signed")
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadDelivery("the payload is not UTF-8") from None
        try:
            stripe.WebhookSignature.verify_header(payload, header, self.service.webhook_secret,
                                                  self.tolerance)
        except stripe.SignatureVerificationError as exc:
            raise BadDelivery(f"signature refused: {exc.user_message or exc}") from None
        return _event(payload)

    async def record_unverified(self, body: bytes) -> bool:
        """Bug ``dedup-before-verify``: record the id first (it commits at once),
        'so a retry storm never does the work twice'. False: seen before."""
        try:
            event_id = json.loads(body)["id"]
        except (ValueError, KeyError, TypeError):
            raise BadDelivery("the payload is not a Stripe event") from None
        if not isinstance(event_id, str):
            raise BadDelivery("the payload is not a Stripe event")
        return await self.service.pool.fetchval(
            "insert into processed_webhook_events (event_id, type) values ($1, 'unverified') "
            "on conflict do nothing returning true", event_id) is not None

    async def process(self, event: Event) -> dict[str, Any]:
        """Do what the event says, once. Raises StripeUnavailable (nothing recorded)."""
        handler = self.handlers.get(event["type"])
        if handler is None:
            return {"received": True, "ignored": event["type"]}
        if not await self.dedup.first(event):
            return DUPLICATE
        prepare, apply = handler
        prepared = await prepare(event) if prepare is not None else None
        async with self.service.pool.acquire() as conn, conn.transaction():
            if not await self.dedup.claim(conn, event):
                return DUPLICATE
            outcome = await apply(conn, event, prepared)
            await self.dedup.done(conn, event)
        return {"received": True, "outcome": outcome}

    async def _process_quietly(self, event: Event) -> None:
        """Bug ``ack-before-commit``: Stripe has its 200 already; a failure here is
        a log line, and nobody will ever deliver this event again."""
        try:
            await self.process(event)
        except Exception as exc:
            log.error("webhook processing failed after it was acknowledged",
                      event_id=event["id"], error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ handlers

    async def _fetch_session(self, event: Event) -> dict[str, Any] | None:
        """The Checkout Session as Stripe has it now; None if Stripe does not know it."""
        session_id = event["data"]["object"].get("id")
        if not isinstance(session_id, str):
            return None
        service = self.service
        try:
            session = await service.call_stripe(
                f"retrieving Checkout Session {session_id}",
                lambda: service.stripe.v1.checkout.sessions.retrieve_async(session_id))
        except StripeRejected as exc:
            log.warning("event names a session Stripe does not know", event_id=event["id"],
                        error=str(exc))
            return None
        return as_dict(session)

    async def _on_completed(self, conn: asyncpg.Connection, event: Event,
                            session: dict[str, Any] | None) -> str:
        if session is None:
            return "session unknown at Stripe: ignored"
        order_id = await orders.find(conn, order_id=(session.get("metadata") or {}).get("order_id"),
                                     session_id=session["id"])
        if order_id is None:
            return "no order for this session: ignored"
        intent = _id_of(session.get("payment_intent"))
        paid = session.get("payment_status") in ("paid", "no_payment_required")
        if paid or not self.checks_payment_status:
            return await self.fulfil(conn, order_id, session_id=session["id"],
                                     payment_intent=intent,
                                     amount_paid=session.get("amount_total"))
        return await orders.await_payment(conn, order_id, session_id=session["id"],
                                          payment_intent=intent)

    async def _session_order(self, conn: asyncpg.Connection, event: Event) -> int | None:
        session = event["data"]["object"]
        return await orders.find(conn, order_id=(session.get("metadata") or {}).get("order_id"),
                                 session_id=session.get("id"))

    async def _on_payment_failed(self, conn: asyncpg.Connection, event: Event, _: Any) -> str:
        order_id = await self._session_order(conn, event)
        if order_id is None:
            return "no order for this session: ignored"
        return await orders.release(conn, order_id, "payment_failed")

    async def _on_expired(self, conn: asyncpg.Connection, event: Event, _: Any) -> str:
        order_id = await self._session_order(conn, event)
        if order_id is None:
            return "no order for this session: ignored"
        return await orders.release(conn, order_id, "expired", only_from=("pending",))

    async def _payment_order(self, conn: asyncpg.Connection, obj: dict[str, Any],
                             intent: str | None) -> int | None:
        if self.finds_by_metadata:
            return await orders.find(conn, order_id=(obj.get("metadata") or {}).get("order_id"),
                                     payment_intent=intent)
        return await orders.find(conn, payment_intent=intent)

    async def _on_payment_intent_succeeded(self, conn: asyncpg.Connection, event: Event,
                                           _: Any) -> str:
        intent = event["data"]["object"]
        order_id = await self._payment_order(conn, intent, intent.get("id"))
        if order_id is None or not intent.get("id"):
            return "no order for this payment: ignored"
        return await orders.link_payment_intent(conn, order_id, intent["id"])

    async def _on_charge_refunded(self, conn: asyncpg.Connection, event: Event, _: Any) -> str:
        charge = event["data"]["object"]
        amount, refunded = charge.get("amount"), charge.get("amount_refunded")
        full = charge.get("refunded") is True or (
            isinstance(amount, int) and isinstance(refunded, int) and refunded >= amount > 0)
        if not full:
            return "partial refund: tickets kept"
        intent = _id_of(charge.get("payment_intent"))
        order_id = await self._payment_order(conn, charge, intent)
        if order_id is not None:
            return await orders.refund(conn, order_id, payment_intent=intent)
        if intent and self.finds_by_metadata:
            return await orders.refund_unknown(conn, intent, event["id"])
        return "no order for this payment: ignored"


def _event(payload: str) -> Event:
    """The verified payload as an event dict, or BadDelivery if it is not one."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise BadDelivery("the payload is not JSON") from None
    if not (isinstance(event, dict) and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)
            and isinstance(event["data"].get("object"), dict)):
        raise BadDelivery("the payload is not a Stripe event (id, type, data.object)")
    return event


def _id_of(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or expanded."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None
