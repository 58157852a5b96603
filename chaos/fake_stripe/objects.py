"""Stripe's object shapes, built as plain dicts, and the two read-side tools
every endpoint shares: list objects and ``expand[]``.

Pure functions: no clock, no ids, no state. :mod:`chaos.fake_stripe.state`
decides ids, times and transitions; this module only knows what the objects
look like on the wire (the fields handlers and invariants read; not every
field Stripe has).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaos.fake_stripe.errors import StripeError

Obj = dict[str, Any]

#: Levels ``expand[]`` may reach, as on Stripe (``a.b.c.d``).
MAX_EXPAND_DEPTH = 4


def product(id_: str, *, name: str, created: int, metadata: Mapping[str, str]) -> Obj:
    return {"id": id_, "object": "product", "active": True, "created": created,
            "description": None, "livemode": False, "metadata": dict(metadata), "name": name}


def price(id_: str, *, product_id: str, unit_amount: int, currency: str, created: int) -> Obj:
    return {"id": id_, "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": created, "currency": currency, "livemode": False, "metadata": {},
            "product": product_id, "type": "one_time", "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount)}


def line_item(id_: str, *, price_obj: Obj, quantity: int, description: str) -> Obj:
    amount = price_obj["unit_amount"] * quantity
    return {"id": id_, "object": "item", "amount_discount": 0, "amount_subtotal": amount,
            "amount_tax": 0, "amount_total": amount, "currency": price_obj["currency"],
            "description": description, "price": price_obj, "quantity": quantity}


def checkout_session(id_: str, *, amount_total: int, currency: str, created: int,
                     expires_at: int, metadata: Mapping[str, str], customer_email: str | None,
                     client_reference_id: str | None, success_url: str | None,
                     cancel_url: str | None) -> Obj:
    return {
        "id": id_, "object": "checkout.session",
        "amount_subtotal": amount_total, "amount_total": amount_total,
        "cancel_url": cancel_url, "client_reference_id": client_reference_id,
        "created": created, "currency": currency,
        "customer_details": {"email": customer_email} if customer_email else None,
        "customer_email": customer_email, "expires_at": expires_at, "livemode": False,
        "metadata": dict(metadata), "mode": "payment", "payment_intent": None, "payment_link": None,
        "payment_method_types": ["card"], "payment_status": "unpaid", "status": "open",
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": f"https://checkout.stripe.test/c/pay/{id_}",
    }


def payment_intent(id_: str, *, amount: int, currency: str, created: int,
                   metadata: Mapping[str, str], status: str) -> Obj:
    return {"id": id_, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "capture_method": "automatic", "created": created,
            "currency": currency, "last_payment_error": None, "latest_charge": None,
            "livemode": False, "metadata": dict(metadata), "payment_method_types": ["card"],
            "status": status}


def charge(id_: str, *, amount: int, currency: str, created: int, payment_intent_id: str,
           metadata: Mapping[str, str], receipt_email: str | None, status: str) -> Obj:
    return {"id": id_, "object": "charge", "amount": amount, "amount_captured": 0,
            "amount_refunded": 0, "captured": False, "created": created, "currency": currency,
            "disputed": False, "failure_code": None, "failure_message": None,
            "livemode": False, "metadata": dict(metadata), "paid": False,
            "payment_intent": payment_intent_id, "receipt_email": receipt_email,
            "refunded": False,
            "refunds": list_object([], url=f"/v1/charges/{id_}/refunds"),
            "status": status}


def refund(id_: str, *, amount: int, charge_obj: Obj, created: int, reason: str | None,
           metadata: Mapping[str, str]) -> Obj:
    return {"id": id_, "object": "refund", "amount": amount, "charge": charge_obj["id"],
            "created": created, "currency": charge_obj["currency"], "metadata": dict(metadata),
            "payment_intent": charge_obj["payment_intent"], "reason": reason,
            "status": "succeeded"}


def dispute(id_: str, *, charge_obj: Obj, created: int, reason: str) -> Obj:
    return {"id": id_, "object": "dispute", "amount": charge_obj["amount"],
            "charge": charge_obj["id"], "created": created, "currency": charge_obj["currency"],
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": charge_obj["payment_intent"], "reason": reason,
            "status": "needs_response"}


def event(id_: str, *, type_: str, obj: Obj, created: int, api_version: str,
          request: Mapping[str, str | None] | None) -> Obj:
    return {"id": id_, "object": "event", "api_version": api_version, "created": created,
            "data": {"object": snapshot(obj)}, "livemode": False, "pending_webhooks": 1,
            "request": dict(request or {"id": None, "idempotency_key": None}),
            "type": type_}


def list_object(data: Sequence[Obj], *, url: str, has_more: bool = False) -> Obj:
    return {"object": "list", "data": list(data), "has_more": has_more, "url": url}


def snapshot(value: Any) -> Any:
    """A deep copy of a JSON-shaped value (what an event carries: the object as it was)."""
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value


#: Fields Stripe leaves out unless expanded, computed from the object that owns them.
Includable = Mapping[tuple[str, str], Callable[[Obj], Obj]]


def expand(obj: Obj, paths: Sequence[str], *, resolve: Callable[[str], Obj | None],
           include: Includable) -> Obj:
    """``obj`` with every dotted path of ``paths`` expanded, as Stripe's ``expand[]``.

    An id string along a path is replaced by the object it names
    (``resolve``); a field listed in ``include`` (``line_items`` of a Checkout
    Session) is computed. Stored objects are never modified: expanded parts
    are fresh dicts.
    """
    for i, path in enumerate(paths):
        parts = path.split(".") if isinstance(path, str) else []
        if not parts or not all(parts):
            raise StripeError(400, f"Invalid expand path: {path!r}.", param=f"expand[{i}]",
                              code="parameter_invalid", validation=True)
        if len(parts) > MAX_EXPAND_DEPTH:
            raise StripeError(400, f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a "
                              f"property ({path}).", param=f"expand[{i}]", validation=True)
        obj = _expand_one(obj, parts, path, f"expand[{i}]", resolve, include)
    return obj


def _expand_one(value: Any, parts: list[str], path: str, param: str,
                resolve: Callable[[str], Obj | None], include: Includable) -> Any:
    if isinstance(value, list):
        return [_expand_one(v, parts, path, param, resolve, include) for v in value]
    if not isinstance(value, dict):
        raise _cannot_expand(path, param)
    head, rest = parts[0], parts[1:]
    if head in value:
        child = value[head]
    elif (value.get("object", ""), head) in include:
        child = include[(value["object"], head)](value)
    else:
        raise _cannot_expand(path, param)
    if isinstance(child, str):
        found = resolve(child)
        if found is None:
            raise _cannot_expand(path, param)
        child = found
    if child is not None and rest:
        child = _expand_one(child, rest, path, param, resolve, include)
    return {**value, head: child}


def _cannot_expand(path: str, param: str) -> StripeError:
    return StripeError(400, f"This property cannot be expanded ({path}).", param=param,
                       validation=True)
