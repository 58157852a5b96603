"""A test harness for the reference service: it plays the buyers (checkout
door, then paying at the fake Stripe) and Stripe (signed deliveries), and
reads the rows through the tester's own observation SQL.

Everything is real: the service and the fake Stripe run as processes on
loopback, the database is real PostgreSQL, signatures are made with
``stripe.WebhookSignature``. Concurrent requests go through the tester's own
transport behind a start barrier, so copies in one batch arrive together.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
import uvicorn

from chaos.database import Database
from chaos.serve import bind
from chaos.services import Service, running
from chaos.signing import sign
from chaos.target import Target
from chaos.transport import LoopbackTransport

SECRET = "whsec_reference_test_secret"
ANON_KEY = "anon_reference_test_key"
STRIPE_KEY = "sk_test_reference"


def fire(requests: list[httpx.Request], *, timeout: float = 30.0) -> list[httpx.Response]:
    """Send ``requests`` together (one connection each, behind a barrier)."""

    async def main() -> list[httpx.Response]:
        answers: list[httpx.Response | None] = [None] * len(requests)
        go = trio.Event()
        async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=timeout,
                                     trust_env=False) as http:

            async def one(i: int, request: httpx.Request, *, task_status=trio.TASK_STATUS_IGNORED):
                task_status.started()
                await go.wait()
                answers[i] = await http.send(request)

            async with trio.open_nursery() as nursery:
                for i, request in enumerate(requests):
                    await nursery.start(one, i, request)
                go.set()
        return [a for a in answers if a is not None]

    return trio.run(main)


def stripe_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An event as Stripe shapes it, for the types the fake Stripe on main does
    not emit yet (refunds, async payments, expiry)."""
    return {"id": f"evt_test_handmade{next(_ids):06d}", "object": "event",
            "api_version": "2024-06-20", "created": int(time.time()),
            "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type}


_ids = itertools.count(1)


@dataclass
class Buyer:
    """One buyer's checkout: the answer and, once paid, Stripe's events."""

    event_id: str
    session_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def completed(self) -> dict[str, Any]:
        return self.events["checkout.session.completed"]

    @property
    def payment_intent(self) -> str:
        return self.completed["data"]["object"]["payment_intent"]

    def refund(self, *, with_metadata: bool = True) -> dict[str, Any]:
        """``charge.refunded`` for a full refund of this buyer's payment."""
        session = self.completed["data"]["object"]
        intent = self.events["payment_intent.succeeded"]["data"]["object"]
        amount = session["amount_total"]
        return stripe_event("charge.refunded", {
            "id": "ch_" + self.payment_intent.removeprefix("pi_"), "object": "charge",
            "amount": amount, "amount_captured": amount, "amount_refunded": amount,
            "refunded": True, "paid": True, "status": "succeeded", "currency": "usd",
            "payment_intent": self.payment_intent,
            "metadata": dict(intent.get("metadata") or {}) if with_metadata else {},
        })


class Shop:
    """One reference service (on its own schema) with the fake Stripe it talks to."""

    def __init__(self, service: Service, stripe_url: str, db: Database) -> None:
        self.service = service
        self.url = service.url
        self.stripe_url = stripe_url
        self.db = db
        self.target = Target(base_url=service.url, webhook_secret=SECRET, anon_key=ANON_KEY)
        self.http = httpx.Client(timeout=10, trust_env=False)
        self._events = itertools.count(1)

    # ------------------------------------------------------------ the event
    def event(self, *, capacity: int = 100, price: int = 2500) -> str:
        event_id = f"ev{next(self._events)}"
        self.db.execute(self.target.fixture_event_sql, event_id)
        self.db.execute(self.target.fixture_ticket_type_sql, f"{event_id}-tt1", event_id, "GA",
                        price, capacity)
        return event_id

    # ------------------------------------------------------------ the buyer
    def checkout_request(self, event_id: str, *, quantity: int = 1, key: str | None = None,
                         price: int | None = 2500, total: int | None = None,
                         email: str = "buyer@chaos.test",
                         headers: dict[str, str] | None = None, body: Any = None) -> httpx.Request:
        if body is None:
            line: dict[str, Any] = {"ticketTypeId": f"{event_id}-tt1", "quantity": quantity}
            if price is not None:
                line["price"] = price
            body = {"eventId": event_id, "tickets": [line], "customerEmail": email,
                    "customerName": "A Buyer",
                    "total": total if total is not None else (price or 2500) * quantity}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Request("POST", self.url + self.target.checkout_path, content=content,
                             headers=headers if headers is not None
                             else self.target.checkout_headers(key))

    def checkout(self, event_id: str, **kwargs: Any) -> httpx.Response:
        return fire([self.checkout_request(event_id, **kwargs)])[0]

    def buy(self, event_id: str, *, quantity: int = 1, pay: bool = True,
            key: str | None = None) -> Buyer:
        """Check out through the door and (by default) pay at once at the fake Stripe."""
        answer = self.checkout(event_id, quantity=quantity, key=key)
        assert answer.status_code == 200, answer.text
        buyer = Buyer(event_id, answer.json()["sessionId"])
        if pay:
            self.pay(buyer)
        return buyer

    def buy_existing(self, event_id: str, session_id: str) -> Buyer:
        """Pay a session a checkout answer already gave."""
        buyer = Buyer(event_id, session_id)
        self.pay(buyer)
        return buyer

    def pay(self, buyer: Buyer) -> None:
        paid = self.http.post(f"{self.stripe_url}/_chaos/checkout/sessions/{buyer.session_id}/pay")
        assert paid.status_code == 200, paid.text
        buyer.events.update({e["type"]: e for e in paid.json()["events"]})

    def stripe_session(self, session_id: str) -> dict[str, Any]:
        """The session as the fake Stripe holds it (what the buyer is charged)."""
        answer = self.http.get(f"{self.stripe_url}/v1/checkout/sessions/{session_id}",
                               headers={"authorization": f"Bearer {STRIPE_KEY}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    # ------------------------------------------------------------ Stripe
    def delivery(self, event: dict[str, Any], *, secret: str = SECRET,
                 age: int = 0) -> httpx.Request:
        signed = sign(json.dumps(event), secret, now=int(time.time()) - age)
        return httpx.Request("POST", self.url + self.target.webhook_path, content=signed.body,
                             headers=signed.headers)

    def deliver(self, event: dict[str, Any], *, copies: int = 1, secret: str = SECRET,
                age: int = 0) -> list[int]:
        """``copies`` deliveries of ``event`` at once; their status codes."""
        return [r.status_code for r in fire([self.delivery(event, secret=secret, age=age)
                                             for _ in range(copies)])]

    # ------------------------------------------------------------ what it stored
    def payments(self, event_id: str) -> dict[str, dict[str, Any]]:
        """tickets_per_payment_sql rows by checkout session."""
        return {row["checkout_session"]: row
                for row in self.db.fetch(self.target.tickets_per_payment_sql, event_id)}

    def tickets(self, buyer: Buyer) -> int:
        row = self.payments(buyer.event_id).get(buyer.session_id)
        return int(row["tickets"]) if row else 0

    def ticket_type(self, event_id: str) -> dict[str, Any]:
        [row] = self.db.fetch(self.target.tickets_per_ticket_type_sql, event_id)
        return row

    def order(self, buyer: Buyer) -> dict[str, Any]:
        [row] = self.db.fetch("select * from orders where stripe_session_id = $1",
                              buyer.session_id)
        return row

    def settle(self, timeout: float = 20.0) -> None:
        """Wait until the service has nothing in flight (background work included)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            metrics = self.http.get(self.url + "/_chaos/metrics").json()
            if metrics["in_flight"] == 0:
                return
            time.sleep(0.02)
        raise AssertionError(f"the service still had requests in flight after {timeout} s")


@contextlib.contextmanager
def open_shop(*bugs: str, server_url: str, schema: str, stripe_url: str,
              workdir: Path) -> Iterator[Shop]:
    """The reference service with ``bugs`` on, against ``stripe_url``."""
    args = ["--database-url", server_url, "--schema", schema, "--stripe-api-base", stripe_url]
    for bug in bugs:
        args += ["--bug", bug]
    env = {"CHAOS_WEBHOOK_SECRET": SECRET, "CHAOS_ANON_KEY": ANON_KEY,
           "CHAOS_STRIPE_API_KEY": STRIPE_KEY}
    with running("reference", args, workdir=workdir, env=env) as service:
        db = Database(server_url, schema=schema)
        shop = Shop(service, stripe_url, db)
        try:
            yield shop
        finally:
            shop.http.close()
            db.close()


class StripeOutage:
    """A forwarder between the service and the fake Stripe that can fail calls,
    as Stripe (or the network to it) does on a bad minute: the fake Stripe
    keeps its state, the service sees 503s for the paths named in ``failing``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing: set[tuple[str, str]] = set()   # (method, path prefix)
        self.calls: list[tuple[str, str, int]] = []
        self._http: httpx.AsyncClient | None = None
        self._sock = bind(0)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level="warning",
                                                     lifespan="on", access_log=False,
                                                     interface="asgi3"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def fail(self, method: str, path_prefix: str) -> None:
        self.failing.add((method, path_prefix))

    def heal(self) -> None:
        self.failing.clear()

    async def _app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._http is not None:
                        await self._http.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        method, path = scope["method"], scope["path"]
        if any(method == m and path.startswith(p) for m, p in self.failing):
            status = 503
            content = json.dumps({"error": {"type": "api_error",
                                            "message": "Stripe is unavailable (test outage)"}})
            headers = [(b"content-type", b"application/json"), (b"stripe-should-retry", b"false")]
            payload = content.encode()
        else:
            query = scope.get("query_string", b"").decode()
            if self._http is None:
                self._http = httpx.AsyncClient(trust_env=False, timeout=10)
            answer = await self._http.request(
                method, f"{self.upstream}{path}{'?' + query if query else ''}", content=body,
                headers=[(k.decode(), v.decode()) for k, v in scope["headers"]
                         if k.lower() not in (b"host", b"content-length")])
            status, payload = answer.status_code, answer.content
            headers = [(b"content-type", answer.headers.get("content-type", "application/json")
                        .encode())]
        self.calls.append((method, path, status))
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def __enter__(self) -> StripeOutage:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Stripe outage forwarder did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
