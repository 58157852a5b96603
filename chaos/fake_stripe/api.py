"""The Stripe API endpoints (``/v1/...``): parameters in, Stripe objects out.

Each handler takes the state and one decoded call and returns the object to
answer with (HTTP 200), or raises :class:`StripeError`. Handlers check every
parameter before they change anything, so a validation error leaves no trace
(and, as on Stripe, is not saved under the call's ``Idempotency-Key``).
Faults, idempotency and records are not their business: see
:mod:`chaos.fake_stripe.app`.

Unknown parameters are accepted and ignored: a target may send fields this
fake does not model, and that must not be what breaks its run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.fake_stripe import objects
from chaos.fake_stripe.errors import param_invalid, param_missing
from chaos.fake_stripe.objects import Obj
from chaos.fake_stripe.state import FakeStripe, LineSpec

MAX_AMOUNT = 99_999_999
MAX_LINE_ITEMS = 100
_CURRENCY = re.compile(r"^[a-z]{3}$")


@dataclass(frozen=True)
class ApiCall:
    """One decoded call: its parameters, its path parameters and, for events it
    causes, Stripe's ``request`` block (``id``, ``idempotency_key``)."""

    params: Mapping[str, Any]
    path_params: Mapping[str, str] = field(default_factory=dict)
    request: Mapping[str, str | None] = field(default_factory=dict)


Handler = Callable[[FakeStripe, ApiCall], Obj]


# -- parameter readers ---------------------------------------------------------------------------

def text(params: Mapping[str, Any], name: str, *, required: bool = False,
         where: str | None = None) -> str | None:
    value = params.get(name)
    param = where or name
    if value is None or value == "":
        if required:
            raise param_missing(param)
        return None
    if not isinstance(value, str):
        raise param_invalid(param, f"Invalid string: {param} must be a string, not a hash or "
                            "array.", code="parameter_invalid_string")
    return value


def integer(params: Mapping[str, Any], name: str, *, low: int = 0, high: int = MAX_AMOUNT,
            required: bool = False, where: str | None = None) -> int | None:
    raw = text(params, name, required=required, where=where)
    param = where or name
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise param_invalid(param, f"Invalid integer: {raw}",
                            code="parameter_invalid_integer") from None
    if not low <= value <= high:
        raise param_invalid(param, f"Invalid {param}: must be between {low} and {high}, got "
                            f"{value}.", code="parameter_invalid_integer")
    return value


def string_hash(params: Mapping[str, Any], name: str, *, where: str | None = None) -> dict[str, str]:
    """A hash of strings such as ``metadata``; empty values drop keys, as on Stripe."""
    value = params.get(name)
    param = where or name
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise param_invalid(param, f"Invalid hash: {param} must be a hash of strings "
                            f"({param}[key]=value).", code="parameter_invalid_string")
    return {k: v for k, v in value.items() if v != ""}


def expand_paths(params: Mapping[str, Any]) -> list[str]:
    value = params.get("expand")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise param_invalid("expand", "Invalid array: expand must be an array of strings "
                        "(expand[]=line_items).", code="parameter_invalid_array")


def expanded(state: FakeStripe, obj: Obj, params: Mapping[str, Any]) -> Obj:
    return objects.expand(obj, expand_paths(params), resolve=state.find, include={
        ("checkout.session", "line_items"): state.session_line_items,
    })


def paginate(state: FakeStripe, items: Sequence[Obj], params: Mapping[str, Any], *,
             url: str) -> Obj:
    """Stripe's list object over ``items`` (newest first): ``limit``,
    ``starting_after``, ``ending_before``; then ``expand[]`` (``data.*``)."""
    limit = integer(params, "limit", low=1, high=100) or 10
    after = text(params, "starting_after")
    before = text(params, "ending_before")
    ids = [item["id"] for item in items]
    start, end = 0, len(items)
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None and cursor not in ids:
            raise param_invalid(name, f"No such object in this list: '{cursor}'",
                                code="resource_missing")
    if after is not None:
        start = ids.index(after) + 1
    if before is not None:
        end = ids.index(before)
        start = max(start, end - limit)
    page = list(items[start:min(end, start + limit)])
    listing = objects.list_object(page, url=url, has_more=start + limit < end)
    return expanded(state, listing, params)


# -- endpoints -----------------------------------------------------------------------------------

def retrieve(kind: str) -> Handler:
    def handler(state: FakeStripe, call: ApiCall) -> Obj:
        return expanded(state, state.get(kind, call.path_params["id"]), call.params)

    handler.__name__ = f"retrieve_{kind.replace('.', '_')}"
    return handler


def create_checkout_session(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    mode = text(params, "mode") or "payment"
    if mode != "payment":
        raise param_invalid("mode", f"The fake Stripe API supports mode=payment only, not {mode!r}.")
    items = params.get("line_items")
    if items is None or items == "":
        raise param_missing("line_items")
    if not isinstance(items, list) or not items:
        raise param_invalid("line_items", "line_items must be an array of line items "
                            "(line_items[0][price_data][unit_amount]=2500, ...).",
                            code="parameter_invalid_array")
    if len(items) > MAX_LINE_ITEMS:
        raise param_invalid("line_items", f"At most {MAX_LINE_ITEMS} line items are allowed.")
    planned = [_line_item(state, item, i) for i, item in enumerate(items)]
    currencies = {spec.currency for spec in planned}
    if len(currencies) > 1:
        raise param_invalid("line_items", "All line items must have the same currency, got "
                            f"{', '.join(sorted(currencies))}.")
    metadata = string_hash(params, "metadata")
    intent_data = params.get("payment_intent_data") or {}
    if not isinstance(intent_data, dict):
        raise param_invalid("payment_intent_data", "payment_intent_data must be a hash.")
    intent_metadata = string_hash(intent_data, "metadata", where="payment_intent_data[metadata]")
    expires_at = integer(params, "expires_at", high=2**40)
    return state.create_checkout_session(
        line_items=planned, currency=currencies.pop(), metadata=metadata,
        customer_email=text(params, "customer_email"),
        client_reference_id=text(params, "client_reference_id"),
        success_url=text(params, "success_url"), cancel_url=text(params, "cancel_url"),
        expires_at=expires_at, intent_metadata=intent_metadata,
    )


def _line_item(state: FakeStripe, item: Any, i: int) -> LineSpec:
    """What ``line_items[i]`` asks for, checked."""
    where = f"line_items[{i}]"
    if not isinstance(item, dict):
        raise param_invalid(where, f"{where} must be a hash with price_data and quantity.")
    quantity = integer(item, "quantity", low=1, high=999_999, required=True,
                       where=f"{where}[quantity]")
    assert quantity is not None
    price_id = text(item, "price", where=f"{where}[price]")
    data = item.get("price_data")
    if price_id is not None:
        price = state.get("price", price_id, param=f"{where}[price]")
        product = state.get("product", price["product"])
        return LineSpec(product["name"], price["unit_amount"], quantity, price["currency"],
                        price_id=price["id"])
    if not isinstance(data, dict):
        raise param_missing(f"{where}[price_data]")
    currency = text(data, "currency", required=True, where=f"{where}[price_data][currency]")
    assert currency is not None
    if not _CURRENCY.match(currency.lower()):
        raise param_invalid(f"{where}[price_data][currency]",
                            f"Invalid currency: {currency}.")
    unit_amount = integer(data, "unit_amount", where=f"{where}[price_data][unit_amount]")
    if unit_amount is None:
        decimal = text(data, "unit_amount_decimal",
                       where=f"{where}[price_data][unit_amount_decimal]")
        if decimal is None:
            raise param_missing(f"{where}[price_data][unit_amount]")
        try:
            unit_amount = int(decimal)
        except ValueError:
            raise param_invalid(f"{where}[price_data][unit_amount_decimal]",
                                "The fake Stripe API takes whole-cent unit_amount_decimal only, "
                                f"not {decimal!r}.") from None
    product_id = text(data, "product", where=f"{where}[price_data][product]")
    if product_id is not None:
        name = state.get("product", product_id, param=f"{where}[price_data][product]")["name"]
    else:
        product_data = data.get("product_data")
        if not isinstance(product_data, dict):
            raise param_missing(f"{where}[price_data][product_data]")
        name = text(product_data, "name", required=True,
                    where=f"{where}[price_data][product_data][name]") or ""
    if unit_amount * quantity > MAX_AMOUNT:
        raise param_invalid(f"{where}[quantity]", f"{where} comes to {unit_amount * quantity}, "
                            f"over the maximum amount {MAX_AMOUNT}.")
    return LineSpec(name, unit_amount, quantity, currency.lower())


def list_checkout_sessions(state: FakeStripe, call: ApiCall) -> Obj:
    sessions = state.all("checkout.session")
    intent = text(call.params, "payment_intent")
    if intent is not None:
        sessions = [s for s in sessions if s["payment_intent"] == intent]
    return paginate(state, sessions[::-1], call.params, url="/v1/checkout/sessions")


def list_line_items(state: FakeStripe, call: ApiCall) -> Obj:
    session = state.get("checkout.session", call.path_params["id"])
    items = state.session_line_items(session)["data"]
    return paginate(state, items, call.params,
                    url=f"/v1/checkout/sessions/{session['id']}/line_items")


def expire_checkout_session(state: FakeStripe, call: ApiCall) -> Obj:
    session, _ = state.expire(call.path_params["id"], request=call.request)
    return expanded(state, session, call.params)


def create_refund(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    charge = text(params, "charge")
    intent = text(params, "payment_intent")
    amount = integer(params, "amount", low=1)
    reason = text(params, "reason")
    if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
        raise param_invalid("reason", f"Invalid reason {reason!r}: use duplicate, fraudulent or "
                            "requested_by_customer.")
    metadata = string_hash(params, "metadata")
    refund, _ = state.refund(charge=charge, payment_intent=intent, amount=amount, reason=reason,
                             metadata=metadata, request=call.request)
    return expanded(state, refund, params)


def list_events(state: FakeStripe, call: ApiCall) -> Obj:
    events = state.all("event")
    wanted = text(call.params, "type")
    if wanted is not None:
        if wanted.endswith("*"):
            events = [e for e in events if e["type"].startswith(wanted[:-1])]
        else:
            events = [e for e in events if e["type"] == wanted]
    return paginate(state, events[::-1], call.params, url="/v1/events")


#: ``(method, path template, handler)``: every endpoint of the Stripe API side.
ENDPOINTS: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/checkout/sessions", create_checkout_session),
    ("GET", "/v1/checkout/sessions", list_checkout_sessions),
    ("GET", "/v1/checkout/sessions/{id}", retrieve("checkout.session")),
    ("GET", "/v1/checkout/sessions/{id}/line_items", list_line_items),
    ("POST", "/v1/checkout/sessions/{id}/expire", expire_checkout_session),
    ("GET", "/v1/payment_intents/{id}", retrieve("payment_intent")),
    ("GET", "/v1/charges/{id}", retrieve("charge")),
    ("POST", "/v1/refunds", create_refund),
    ("GET", "/v1/refunds/{id}", retrieve("refund")),
    ("GET", "/v1/disputes/{id}", retrieve("dispute")),
    ("GET", "/v1/products/{id}", retrieve("product")),
    ("GET", "/v1/prices/{id}", retrieve("price")),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", retrieve("event")),
]
