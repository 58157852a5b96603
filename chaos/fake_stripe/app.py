"""The fake Stripe's HTTP face (Starlette, ASGI).

Two sides:
- ``/v1/...``: the Stripe API, as the target's own Stripe client calls it
  (bearer auth with a test key; Stripe-shaped JSON and errors).
- ``/_chaos/...``: the tester's control side: make a buyer check out and
  pay, read events. Stripe has no such endpoints; the tester plays the buyer.
"""

from __future__ import annotations

import json
import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chaos.fake_stripe.forms import FormError, decode
from chaos.fake_stripe.state import FakeStripe, StripeObjectMissing


def _error(status: int, type_: str, message: str, *, code: str | None = None,
           param: str | None = None) -> JSONResponse:
    error = {"type": type_, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status)


def _missing(kind: str, object_id: str, param: str = "id") -> JSONResponse:
    return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                  code="resource_missing", param=param)


def create_app(*, prefix: str | None = None) -> Starlette:
    state = FakeStripe(prefix=prefix or secrets.token_hex(3))

    def authorised(request: Request) -> JSONResponse | None:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        if not key:
            return _error(401, "invalid_request_error",
                          "You did not provide an API key.")
        if not key.startswith(("sk_test_", "rk_test_")):
            return _error(401, "invalid_request_error",
                          "The fake Stripe API accepts test keys only (sk_test_...).")
        return None

    async def create_session(request: Request):
        if (denied := authorised(request)) is not None:
            return denied
        try:
            params = decode((await request.body()).decode("utf-8", errors="replace"))
        except FormError as exc:
            return _error(400, "invalid_request_error", str(exc), param=exc.param)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            return _error(400, "invalid_request_error", "Missing required param: line_items.",
                          code="parameter_missing", param="line_items")
        line_items = []
        total = 0
        currency = "usd"
        for i, item in enumerate(items):
            price_data = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price_data, dict):
                price_data = {}
            try:
                quantity = int(item.get("quantity", "1"))
                unit_amount = int(price_data["unit_amount"])
            except (TypeError, KeyError, ValueError, AttributeError):
                return _error(400, "invalid_request_error",
                              f"line_items[{i}] needs price_data[unit_amount] and quantity "
                              "as integers.", code="parameter_invalid_integer",
                              param=f"line_items[{i}][price_data][unit_amount]")
            if quantity < 1 or unit_amount < 0:
                return _error(400, "invalid_request_error",
                              f"line_items[{i}] has quantity {quantity} and unit_amount "
                              f"{unit_amount}; both must be positive.",
                              param=f"line_items[{i}][quantity]")
            currency = price_data.get("currency", currency)
            name = (price_data.get("product_data") or {}).get("name", "")
            line_items.append({"object": "item", "quantity": quantity,
                               "amount_total": unit_amount * quantity, "currency": currency,
                               "description": name,
                               "price": {"object": "price", "unit_amount": unit_amount,
                                         "currency": currency, "product": {"name": name}}})
            total += unit_amount * quantity
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            return _error(400, "invalid_request_error", "metadata must be a hash.",
                          param="metadata")
        session = state.create_checkout_session(
            amount_total=total, currency=currency, metadata=metadata,
            customer_email=params.get("customer_email"), line_items=line_items,
            success_url=params.get("success_url"), cancel_url=params.get("cancel_url"),
        )
        return JSONResponse(session)

    async def retrieve_session(request: Request):
        if (denied := authorised(request)) is not None:
            return denied
        session_id = request.path_params["id"]
        try:
            return JSONResponse(state.session(session_id))
        except StripeObjectMissing:
            return _missing("checkout.session", session_id)

    async def retrieve_event(request: Request):
        if (denied := authorised(request)) is not None:
            return denied
        event_id = request.path_params["id"]
        try:
            return JSONResponse(state.event(event_id))
        except StripeObjectMissing:
            return _missing("event", event_id)

    async def control_create_session(request: Request):
        try:
            params = json.loads(await request.body())
            session = state.create_checkout_session(
                amount_total=int(params["amount_total"]),
                currency=params.get("currency", "usd"),
                metadata={str(k): str(v) for k, v in params.get("metadata", {}).items()},
                customer_email=params.get("customer_email"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(400, "invalid_request_error", f"bad control request: {exc}")
        return JSONResponse(session)

    async def control_pay(request: Request):
        session_id = request.path_params["id"]
        try:
            events = state.pay(session_id)
        except StripeObjectMissing:
            return _missing("checkout.session", session_id)
        except ValueError as exc:
            return _error(400, "invalid_request_error", str(exc))
        return JSONResponse({"events": events})

    async def health(request: Request):
        return JSONResponse({"ok": True, "service": "fake-stripe"})

    return Starlette(routes=[
        Route("/v1/checkout/sessions", create_session, methods=["POST"]),
        Route("/v1/checkout/sessions/{id}", retrieve_session, methods=["GET"]),
        Route("/v1/events/{id}", retrieve_event, methods=["GET"]),
        Route("/_chaos/checkout/sessions", control_create_session, methods=["POST"]),
        Route("/_chaos/checkout/sessions/{id}/pay", control_pay, methods=["POST"]),
        Route("/_chaos/health", health, methods=["GET"]),
    ])
