"""The fake Stripe's HTTP face (Starlette, ASGI), run by ``python -m chaos fake-stripe --port P``.

Two sides.

**Stripe API, ``/v1/...``**, as the target's own Stripe client calls it
(stripe-python with ``api_base``, stripe-node with ``host``/``port``/
``protocol``): bearer (or basic) auth with a test key, form-encoded
parameters with nested keys, JSON answers in Stripe's object shapes, errors
in Stripe's error shape. Endpoints (:data:`chaos.fake_stripe.api.ENDPOINTS`)::

    POST /v1/checkout/sessions                 GET /v1/checkout/sessions[?payment_intent=]
    GET  /v1/checkout/sessions/{id}            expand[]=line_items, line_items.data.price.product,
                                               payment_intent, payment_intent.latest_charge
    GET  /v1/checkout/sessions/{id}/line_items POST /v1/checkout/sessions/{id}/expire
    POST /v1/payment_intents (amount, currency, payment_method?, confirm?, metadata?, ...)
    GET  /v1/payment_intents   GET|POST /v1/payment_intents/{id}   (retrieve | update)
    POST /v1/payment_intents/{id}/confirm (payment_method?: pm_card_visa, pm_card_chargeDeclined, ...)
    POST /v1/payment_intents/{id}/cancel  (cancellation_reason?)
    GET  /v1/charges[?payment_intent=]  GET /v1/charges/{id}  (refunds list with total_count)
    GET  /v1/charges/{id}/refunds   GET /v1/balance_transactions/{id}   GET /v1/payment_methods/{id}
    POST /v1/refunds  (charge | payment_intent, amount?, reason?)
    GET  /v1/refunds[?charge=|payment_intent=]  GET /v1/refunds/{id}
    GET  /v1/disputes/{id}   GET /v1/products/{id}   GET /v1/prices/{id}
    GET  /v1/events[?type=checkout.session.*]  GET  /v1/events/{id}
    GET  /v1/account   GET /v1/accounts/{id}   (the keys' own account; data: account.json)
    Products, Prices, Payment Links: see :mod:`chaos.fake_stripe.catalogue`

Every list endpoint takes ``limit``, ``starting_after``, ``ending_before``
and ``include[]=total_count``; every endpoint takes ``expand[]``, checked
against Stripe's own list of expandable fields
(:mod:`~chaos.fake_stripe.expansion`).

An unknown path, or a known path with the wrong method, answers 404
``Unrecognized request URL (METHOD: path)`` as Stripe does. Every call goes
through one pipeline (:meth:`FakeStripeServer.call`): record -> fault ->
``Idempotency-Key`` (:mod:`~chaos.fake_stripe.idempotency`) -> endpoint ->
save -> answer. Answers carry ``Request-Id``; replays also carry
``Idempotent-Replayed: true`` and ``Original-Request``.

**Control, ``/_chaos/...``**, for the tester, who plays the buyer and Stripe
(JSON in and out; no auth; never faulted; errors in Stripe's shape).
Every call that changes a payment returns the events it produced, with ids
and payloads that agree with the stored objects (``GET /v1/events/{id}``
and a retrieve of ``data.object.id`` find them, the latter in its current
state)::

    POST   /_chaos/checkout/sessions               {"amount_total", "currency"?, "metadata"?,
                                                    "customer_email"?, "client_reference_id"?,
                                                    "payment_intent_metadata"?,
                                                    "line_items"?: [{"name", "unit_amount", "quantity"}
                                                                    | {"price", "quantity"}]}
                                                   -> the checkout.session
    POST   /_chaos/checkout/sessions/{id}/pay      {"outcome"?: "paid" (default) | "async_pending"
                                                    | "async_succeeded" | "async_failed",
                                                    "customer_details"?: {"email", "name"}}
    POST   /_chaos/checkout/sessions/{id}/settle   {"outcome": "succeeded" | "failed"}
                                                   (a session paid with async_pending)
    POST   /_chaos/checkout/sessions/{id}/expire   {}
                                                   -> {"events", "checkout_session",
                                                       "payment_intent", "charge"}
    POST   /_chaos/refunds                         {"payment_intent" | "charge", "amount"?, "reason"?}
                                                   -> {"refund", "charge", "events"}
    POST   /_chaos/disputes                        {"payment_intent" | "charge", "reason"?}
                                                   -> {"dispute", "charge", "events"}
    POST   /_chaos/payment_intents                 {"amount", "currency"?, "metadata"?,
                                                    "receipt_email"?, "description"?}
                                                   -> {"payment_intent", "events"}
    POST   /_chaos/payment_intents/{id}/confirm    {"payment_method"?: "pm_card_visa"}
                                                   -> {"payment_intent", "charge", "events",
                                                       "error" (a declined card) | null}
    POST   /_chaos/payment_intents/{id}/cancel     {} -> {"payment_intent", "charge", "events"}
    POST   /_chaos/faults                          a rule (see chaos.fake_stripe.faults) -> the rule
    GET    /_chaos/faults                          the rules, with seen/applied counters
    DELETE /_chaos/faults[/{id}]                   disarm all, or one
    GET    /_chaos/records?since=N                 calls to /v1 numbered above N, with last_seq
                                                   (see chaos.fake_stripe.records)
    GET    /_chaos/objects/{kind}?metadata[k]=v    every object of a kind (checkout.session,
                                                   payment_intent, charge, refund, dispute,
                                                   event, product, price, item), oldest first;
                                                   &after=ID: those created after ID
    POST   /_chaos/catalogue, /_chaos/payment_links/{id}/checkout: see
                                                   chaos.fake_stripe.catalogue
    GET    /_chaos/health

Events per transition are listed in :mod:`chaos.fake_stripe.state`.
Connection faults (``reset``, ``lost-answer``, ``hang``) need the server's
own protocol class (:mod:`chaos.fake_stripe.connections`); under another
server they answer 500 and say so.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.fake_stripe import api, catalogue, control
from chaos.fake_stripe.connections import Connections
from chaos.fake_stripe.errors import API_ERROR, StripeError, unrecognized_url
from chaos.fake_stripe.faults import FaultPlan, FaultRule
from chaos.fake_stripe.forms import FormError, decode
from chaos.fake_stripe.idempotency import Keys, Replay, Reserved, Saved, fingerprint
from chaos.fake_stripe.records import CallRecord, Records
from chaos.fake_stripe.state import API_VERSION, FakeStripe

#: Largest request body accepted, in bytes.
MAX_BODY = 1024 * 1024
#: How long to wait for uvicorn to notice a connection the app cut.
_CUT_GRACE = 5.0

log = logging.getLogger("chaos.fake_stripe")


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class FakeStripeServer:
    """The fake Stripe's parts, and the pipeline every ``/v1`` call goes through."""

    def __init__(self, *, prefix: str, now: Callable[[], float] = time.time,
                 connections: Connections | None = None) -> None:
        self.prefix = prefix
        self.state = FakeStripe(prefix=prefix, now=now)
        self.keys = Keys()
        self.faults = FaultPlan()
        self.records = Records()
        self.connections = connections if connections is not None else Connections()
        self.control = control.Control(state=self.state, faults=self.faults,
                                       records=self.records)
        self._request_ids = itertools.count(1)

    # -- the Stripe API side -------------------------------------------------------------------

    async def call(self, request: Request, endpoint: str, handler: api.Handler) -> Response:
        request_id = f"req_{self.prefix}{next(self._request_ids):08d}"
        method, path = request.method, request.url.path
        api_key = _api_key(request)
        idem = request.headers.get("idempotency-key") if method == "POST" else None
        problem: StripeError | None = None
        try:
            params = await _params(request)
        except StripeError as exc:
            params, problem = {}, exc
        record = self.records.start(request_id=request_id, started=time.time(), method=method,
                                    path=path, endpoint=endpoint, api_key=api_key,
                                    idempotency_key=idem, params=params)
        problem = _authorise(api_key) or problem  # as on Stripe: no key, no further questions
        if problem is not None:
            return self._answer(record, problem.status, problem.body())

        rule = self.faults.pick(method, path)
        if rule is not None:
            record.fault, record.fault_id = rule.kind, rule.id
            if rule.kind == "reset":
                return await self._cut(request, record, reset=True)
            if rule.kind == "rate-limit":
                return self._answer(record, 429, _rate_limited(rule), outcome="fault",
                                    headers={"retry-after": str(rule.retry_after)})
            if rule.kind == "error" and not rule.saved:
                return self._answer(record, rule.status, _api_error(rule), outcome="fault")

        reserved: Reserved | None = None
        if idem:
            try:
                decision = self.keys.begin(api_key or "", idem, endpoint=f"{method} {path}",
                                           fingerprint=fingerprint(method, path, params))
            except StripeError as exc:
                return self._answer(record, exc.status, exc.body())
            if isinstance(decision, Replay):
                saved = decision.saved
                record.replayed = True
                return self._answer(record, saved.status, json.loads(saved.body),
                                    encoded=saved.body, outcome="replayed",
                                    headers={"idempotent-replayed": "true",
                                             "original-request": saved.request_id})
            reserved = decision
        try:
            if rule is not None and rule.kind == "hang":
                if await self._disconnected(request, rule.max_seconds):
                    record.outcome, record.ended = "fault", time.time()
                    return Response(status_code=204)  # the client left: nobody to answer
                return await self._cut(request, record, reset=False)
            if rule is not None and rule.kind == "latency":
                await _sleep_at_least(rule.seconds)
            status, body, save = self._execute(rule, handler, record, request_id, idem, params,
                                               request.path_params)
            encoded = _json(body)
            if reserved is not None and save:
                self.keys.save(reserved, Saved(status, encoded, request_id))
                reserved = None
        finally:
            if reserved is not None:
                self.keys.release(reserved)
        if rule is not None and rule.kind == "lost-answer":
            record.object_id = _object_id(status, body)
            return await self._cut(request, record, reset=False)
        return self._answer(record, status, body, encoded=encoded,
                            outcome="fault" if rule is not None else None)

    def unrecognized(self, request: Request, error: StripeError) -> Response:
        """Answer (and record) a ``/v1`` call that names no endpoint."""
        request_id = f"req_{self.prefix}{next(self._request_ids):08d}"
        api_key = _api_key(request)
        record = self.records.start(
            request_id=request_id, started=time.time(), method=request.method,
            path=request.url.path, endpoint="unrecognized", api_key=api_key,
            idempotency_key=request.headers.get("idempotency-key"), params={})
        return self._answer(record, error.status, error.body())

    def _execute(self, rule: FaultRule | None, handler: api.Handler, record: CallRecord,
                 request_id: str, idem: str | None, params: dict[str, Any],
                 path_params: dict[str, Any]) -> tuple[int, Any, bool]:
        """``(status, body, save under the key?)`` of running the endpoint (or a saved 5xx)."""
        if rule is not None and rule.kind == "error":  # saved: the endpoint "failed"
            return rule.status, _api_error(rule), True
        call = api.ApiCall(params=params, path_params=path_params,
                           request={"id": request_id, "idempotency_key": idem})
        try:
            body = handler(self.state, call)
        except StripeError as exc:
            return exc.status, exc.body(), not exc.validation
        except Exception:
            log.exception("the fake Stripe failed on %s %s", record.method, record.path)
            return 500, {"error": {"type": API_ERROR, "message": "The fake Stripe API failed "
                                   "on this request; its log has the details."}}, False
        record.executed = True
        return 200, body, True

    def _answer(self, record: CallRecord, status: int, body: Any, *, encoded: bytes | None = None,
                outcome: str | None = None, headers: dict[str, str] | None = None) -> Response:
        """Answer ``body`` (already ``encoded``, or encoded here) and complete the record."""
        if encoded is None:
            encoded = _json(body)
        record.ended, record.status = time.time(), status
        record.outcome = outcome or ("ok" if 200 <= status < 300 else "error")
        record.object_id = _object_id(status, body)
        if status >= 400 and isinstance(body, dict):
            error = body.get("error") or {}
            record.error_type, record.error_code = error.get("type"), error.get("code")
        all_headers = {"request-id": record.request_id, "stripe-version": API_VERSION}
        if record.idempotency_key:
            all_headers["idempotency-key"] = record.idempotency_key
        all_headers.update(headers or {})
        return Response(encoded, status_code=status, headers=all_headers,
                        media_type="application/json")

    async def _cut(self, request: Request, record: CallRecord, *, reset: bool) -> Response:
        """End the connection without an answer: RST (``reset``) or a bare close."""
        client = request.scope.get("client")
        done = self.connections.reset(client) if reset else self.connections.drop(client)
        if not done:
            return self._answer(record, 500, {"error": {
                "type": API_ERROR, "message": "This connection fault needs the fake Stripe's own "
                "server (python -m chaos fake-stripe): its transport is not reachable here."}},
                outcome="fault")
        await self._disconnected(request, _CUT_GRACE)
        record.outcome, record.status, record.ended = "fault", None, time.time()
        return Response(status_code=204)  # uvicorn drops it: the connection is gone

    async def _disconnected(self, request: Request, timeout: float) -> bool:
        """Wait until the client is gone (True), or ``timeout`` seconds (False)."""
        with anyio.move_on_after(timeout):
            while (await request.receive())["type"] != "http.disconnect":
                pass
            return True
        return False

    # -- the control side ----------------------------------------------------------------------

    def control_endpoint(self, handler: control.ControlHandler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise StripeError(400, f"The control API takes JSON bodies: {exc}.",
                                  validation=True) from None
            if not isinstance(body, dict):
                raise StripeError(400, "The control API takes a JSON object as body.",
                                  validation=True)
            try:
                query = decode(request.url.query)
            except FormError as exc:
                raise StripeError(400, str(exc), param=exc.param, validation=True) from None
            call = control.ControlCall(body=body, path_params=request.path_params, query=query)
            return JSONResponse(handler(self.control, call))
        return endpoint


async def _sleep_at_least(seconds: float) -> None:
    """Sleep ``seconds`` or more: uvloop times sleeps from its cached loop clock, which
    can end them a few milliseconds early; a latency fault promises a lower bound."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await anyio.sleep(left)


def _api_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # curl -u sk_test_...:
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _authorise(api_key: str | None) -> StripeError | None:
    if not api_key:
        return StripeError(401, "You did not provide an API key. Provide it in the Authorization "
                           "header (Authorization: Bearer sk_test_...).")
    if not api_key.startswith(("sk_test_", "rk_test_")):
        return StripeError(401, "The fake Stripe API accepts test keys only (sk_test_...); it "
                           "never takes a live key.", code="api_key_expired")
    return None


async def _params(request: Request) -> dict[str, Any]:
    """The call's parameters: the query string on GET, the form body on POST."""
    if request.method != "POST":
        raw = request.url.query
    else:
        if request.headers.get("content-type", "").startswith("application/json"):
            raise StripeError(400, "The v1 API takes application/x-www-form-urlencoded bodies, "
                              "not JSON.", validation=True)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise StripeError(413, f"Request body over {MAX_BODY} bytes.", validation=True)
        raw = body.decode("utf-8", errors="replace")
    try:
        return decode(raw)
    except FormError as exc:
        raise StripeError(400, f"Invalid request: {exc}.", code="parameter_invalid",
                          param=exc.param or None, validation=True) from None


def _object_id(status: int, body: Any) -> str | None:
    if 200 <= status < 300 and isinstance(body, dict) and body.get("object") != "list":
        object_id = body.get("id")
        return object_id if isinstance(object_id, str) else None
    return None


def _api_error(rule: FaultRule) -> dict[str, Any]:
    return {"error": {"type": API_ERROR, "message": f"An error occurred with our connection to "
                      f"Stripe (fault {rule.id}: HTTP {rule.status}).", "fault": rule.id}}


def _rate_limited(rule: FaultRule) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "code": "rate_limit",
                      "message": "Too many requests hit the API too quickly (fault "
                      f"{rule.id}); retry after {rule.retry_after} s."}}


def create_app(*, prefix: str | None = None, now: Callable[[], float] = time.time,
               connections: Connections | None = None) -> Starlette:
    """The fake Stripe as an ASGI app; ``app.state.fake`` is its :class:`FakeStripeServer`.

    ``connections`` is the registry its server's protocol class fills
    (:meth:`Connections.protocol`); without it, connection faults answer 500.
    """
    fake = FakeStripeServer(prefix=prefix or secrets.token_hex(3), now=now,
                            connections=connections)

    def api_route(method: str, template: str, handler: api.Handler) -> Route:
        endpoint = f"{method} {template}"

        async def run(request: Request) -> Response:
            return await fake.call(request, endpoint, handler)

        return Route(template, run, methods=[method], name=endpoint)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "service": "fake-stripe"})

    async def stripe_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StripeError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            error = unrecognized_url(request.method, request.url.path)
        else:
            error = StripeError(exc.status_code, str(exc.detail))
        if not request.url.path.startswith("/v1/"):
            return JSONResponse(error.body(), status_code=error.status)
        return fake.unrecognized(request, error)

    async def server_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"type": API_ERROR, "message": "The fake Stripe API failed "
                                       "on this request; its log has the details."}},
                            status_code=500)

    routes = [api_route(*endpoint) for endpoint in api.ENDPOINTS + catalogue.ENDPOINTS]
    routes += [Route(template, fake.control_endpoint(handler), methods=[method])
               for method, template, handler in control.ENDPOINTS + catalogue.CONTROL_ENDPOINTS]
    routes.append(Route("/_chaos/health", health, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={
        StripeError: stripe_error, HTTPException: http_error, Exception: server_error,
    })
    app.router.redirect_slashes = False
    app.state.fake = fake
    return app
