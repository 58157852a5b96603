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

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from chaos.fake_stripe import expansion, objects
from chaos.fake_stripe.errors import missing, param_invalid, param_missing
from chaos.fake_stripe.objects import Obj
from chaos.fake_stripe.state import FakeStripe, LineSpec

MAX_AMOUNT = 99_999_999
#: The account the test keys belong to, as ``GET /v1/account`` answers it: data
#: (``account.json``, from Stripe's own fixtures of its OpenAPI spec), not code.
ACCOUNT: Obj = json.loads(
    resources.files("chaos.fake_stripe").joinpath("account.json").read_text())["account"]
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


def expanded(state: FakeStripe, obj: Obj, params: Mapping[str, Any], *,
             include: expansion.Includable | None = None) -> Obj:
    """``obj`` with the ``expand[]`` of ``params``; ``include`` adds fields other modules
    compute (a Payment Link's line items)."""
    return expansion.expand(obj, expand_paths(params), resolve=state.find, include={
        ("checkout.session", "line_items"): state.session_line_items, **(include or {}),
    })


def includes(params: Mapping[str, Any]) -> list[str]:
    """``include[]``: extra fields asked of a list (Stripe knows ``total_count``)."""
    value = params.get("include")
    if value is None:
        return []
    wanted = [value] if isinstance(value, str) else value
    if not isinstance(wanted, list) or not all(isinstance(v, str) for v in wanted):
        raise param_invalid("include", "Invalid array: include must be an array of strings "
                            "(include[]=total_count).", code="parameter_invalid_array")
    for i, name in enumerate(wanted):
        if name != "total_count":
            raise param_invalid(f"include[{i}]", f"Invalid include value: {name!r}; this list "
                                "can include total_count only.")
    return wanted


def paginate(state: FakeStripe, items: Sequence[Obj], params: Mapping[str, Any], *,
             url: str) -> Obj:
    """Stripe's list object over ``items`` (newest first): ``limit``,
    ``starting_after``, ``ending_before``, ``include[]=total_count``; then
    ``expand[]`` (``data.*``)."""
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
    total = len(items) if includes(params) else None
    listing = objects.list_object(page, url=url, has_more=start + limit < end, total_count=total)
    return expanded(state, listing, params)


# -- endpoints -----------------------------------------------------------------------------------

def retrieve(kind: str) -> Handler:
    def handler(state: FakeStripe, call: ApiCall) -> Obj:
        return expanded(state, state.get(kind, call.path_params["id"]), call.params)

    handler.__name__ = f"retrieve_{kind.replace('.', '_')}"
    return handler


def retrieve_account(state: FakeStripe, call: ApiCall) -> Obj:
    """The keys' own account (``/v1/account``, or ``/v1/accounts/{id}`` with its id)."""
    wanted = call.path_params.get("id")
    if wanted is not None and wanted != ACCOUNT["id"]:
        raise missing("account", wanted)
    return expanded(state, objects.snapshot(ACCOUNT), call.params)


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


# -- payment intents, charges, balance transactions ----------------------------------------------

def boolean(params: Mapping[str, Any], name: str) -> bool:
    raw = text(params, name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise param_invalid(name, f"Invalid boolean: {raw}", code="parameter_invalid_boolean")
    return raw == "true"


def _currency(params: Mapping[str, Any], *, required: bool) -> str | None:
    currency = text(params, "currency", required=required)
    if currency is not None and not _CURRENCY.match(currency.lower()):
        raise param_invalid("currency", f"Invalid currency: {currency}.")
    return currency.lower() if currency is not None else None


def create_payment_intent(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    amount = integer(params, "amount", low=1, required=True)
    currency = _currency(params, required=True)
    assert amount is not None and currency is not None
    types = params.get("payment_method_types") or ["card"]
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise param_invalid("payment_method_types", "payment_method_types must be an array of "
                            "strings (payment_method_types[]=card).",
                            code="parameter_invalid_array")
    method = text(params, "payment_method")
    confirm = boolean(params, "confirm")
    if confirm and method is None:
        raise param_invalid("payment_method", "You must provide a payment_method when "
                            "confirm=true (payment_method=pm_card_visa).")
    metadata = string_hash(params, "metadata")
    confirmation = text(params, "confirmation_method") or "automatic"
    if confirmation not in ("automatic", "manual"):
        raise param_invalid("confirmation_method", f"Invalid confirmation_method "
                            f"{confirmation!r}: use automatic or manual.")
    intent, _ = state.create_payment_intent(
        amount=amount, currency=currency, metadata=metadata,
        description=text(params, "description"), receipt_email=text(params, "receipt_email"),
        payment_method=method, payment_method_types=tuple(types),
        confirmation_method=confirmation, request=call.request)
    if confirm:
        intent, _ = state.confirm_payment_intent(intent["id"], request=call.request)
    return expanded(state, intent, params)


def update_payment_intent(state: FakeStripe, call: ApiCall) -> Obj:
    params = call.params
    changes: dict[str, object] = {}
    amount = integer(params, "amount", low=1)
    if amount is not None:
        changes["amount"] = amount
    currency = _currency(params, required=False)
    if currency is not None:
        changes["currency"] = currency
    if "metadata" in params:
        changes["metadata"] = string_hash(params, "metadata")
    for name in ("description", "receipt_email", "payment_method"):
        value = text(params, name)
        if value is not None:
            changes[name] = value
    intent = state.update_payment_intent(call.path_params["id"], changes)
    return expanded(state, intent, params)


def confirm_payment_intent(state: FakeStripe, call: ApiCall) -> Obj:
    intent, _ = state.confirm_payment_intent(call.path_params["id"],
                                             payment_method=text(call.params, "payment_method"),
                                             request=call.request)
    return expanded(state, intent, call.params)


def cancel_payment_intent(state: FakeStripe, call: ApiCall) -> Obj:
    reason = text(call.params, "cancellation_reason")
    if reason is not None and reason not in _CANCELLATION_REASONS:
        raise param_invalid("cancellation_reason", f"Invalid cancellation_reason {reason!r}: use "
                            f"one of {', '.join(_CANCELLATION_REASONS)}.")
    intent, _ = state.cancel_payment_intent(call.path_params["id"], reason=reason,
                                            request=call.request)
    return expanded(state, intent, call.params)


_CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")


def list_payment_intents(state: FakeStripe, call: ApiCall) -> Obj:
    return paginate(state, state.all("payment_intent")[::-1], call.params,
                    url="/v1/payment_intents")


def list_charges(state: FakeStripe, call: ApiCall) -> Obj:
    charges = state.all("charge")
    intent = text(call.params, "payment_intent")
    if intent is not None:
        charges = [c for c in charges if c["payment_intent"] == intent]
    return paginate(state, charges[::-1], call.params, url="/v1/charges")


def list_charge_refunds(state: FakeStripe, call: ApiCall) -> Obj:
    charge = state.get("charge", call.path_params["id"])
    return paginate(state, charge["refunds"]["data"], call.params,
                    url=f"/v1/charges/{charge['id']}/refunds")


def list_refunds(state: FakeStripe, call: ApiCall) -> Obj:
    refunds = state.all("refund")
    for name in ("charge", "payment_intent"):
        wanted = text(call.params, name)
        if wanted is not None:
            refunds = [r for r in refunds if r[name] == wanted]
    return paginate(state, refunds[::-1], call.params, url="/v1/refunds")


#: ``(method, path template, handler)``: every endpoint of the Stripe API side.
ENDPOINTS: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/account", retrieve_account),
    ("GET", "/v1/accounts/{id}", retrieve_account),
    ("POST", "/v1/checkout/sessions", create_checkout_session),
    ("GET", "/v1/checkout/sessions", list_checkout_sessions),
    ("GET", "/v1/checkout/sessions/{id}", retrieve("checkout.session")),
    ("GET", "/v1/checkout/sessions/{id}/line_items", list_line_items),
    ("POST", "/v1/checkout/sessions/{id}/expire", expire_checkout_session),
    ("POST", "/v1/payment_intents", create_payment_intent),
    ("GET", "/v1/payment_intents", list_payment_intents),
    ("GET", "/v1/payment_intents/{id}", retrieve("payment_intent")),
    ("POST", "/v1/payment_intents/{id}", update_payment_intent),
    ("POST", "/v1/payment_intents/{id}/confirm", confirm_payment_intent),
    ("POST", "/v1/payment_intents/{id}/cancel", cancel_payment_intent),
    ("GET", "/v1/charges", list_charges),
    ("GET", "/v1/charges/{id}", retrieve("charge")),
    ("GET", "/v1/charges/{id}/refunds", list_charge_refunds),
    ("GET", "/v1/balance_transactions/{id}", retrieve("balance_transaction")),
    ("GET", "/v1/payment_methods/{id}", retrieve("payment_method")),
    ("POST", "/v1/refunds", create_refund),
    ("GET", "/v1/refunds", list_refunds),
    ("GET", "/v1/refunds/{id}", retrieve("refund")),
    ("GET", "/v1/disputes/{id}", retrieve("dispute")),
    ("GET", "/v1/products/{id}", retrieve("product")),
    ("GET", "/v1/prices/{id}", retrieve("price")),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", retrieve("event")),
]
