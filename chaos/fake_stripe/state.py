"""The fake Stripe's objects and the events that follow them, in memory.

Pure state: no HTTP here. Ids are counters with a per-process prefix, so
objects of one run never collide and a run's ids read in creation order.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any


class StripeObjectMissing(KeyError):
    """An id that names no object of that kind."""


@dataclass
class FakeStripe:
    prefix: str = "chaos"
    now: Any = time.time
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    line_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _id(self, kind: str) -> str:
        return f"{kind}_test_{self.prefix}{next(self._ids):08d}"

    def create_checkout_session(self, *, amount_total: int, currency: str = "usd",
                                metadata: dict[str, str] | None = None,
                                customer_email: str | None = None,
                                line_items: list[dict[str, Any]] | None = None,
                                success_url: str | None = None,
                                cancel_url: str | None = None) -> dict[str, Any]:
        session_id = self._id("cs")
        self.line_items[session_id] = list(line_items or [])
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": amount_total,
            "currency": currency,
            "customer_email": customer_email,
            "customer_details": {"email": customer_email},
            "created": int(self.now()),
            "livemode": False,
            "metadata": dict(metadata or {}),
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": success_url,
            "cancel_url": cancel_url,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    def session(self, session_id: str) -> dict[str, Any]:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise StripeObjectMissing(session_id) from None

    def event(self, event_id: str) -> dict[str, Any]:
        try:
            return self.events[event_id]
        except KeyError:
            raise StripeObjectMissing(event_id) from None

    def pay(self, session_id: str) -> list[dict[str, Any]]:
        """The buyer pays at once: the session completes, a payment intent
        succeeds, and Stripe emits the events for both."""
        session = self.session(session_id)
        if session["status"] != "open":
            raise ValueError(f"session {session_id} is {session['status']}, not open")
        intent_id = self._id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "metadata": dict(session["metadata"]),
            "status": "succeeded",
            "created": int(self.now()),
            "livemode": False,
        }
        self.payment_intents[intent_id] = intent
        session.update(status="complete", payment_status="paid", payment_intent=intent_id)
        return [
            self._emit("checkout.session.completed", session),
            self._emit("payment_intent.succeeded", intent),
        ]

    def _emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        event_id = self._id("evt")
        event = {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(self.now()),
            "data": {"object": dict(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self.events[event_id] = event
        return event
