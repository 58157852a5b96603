"""The tester's control side (``/_chaos/...``): play the buyer and Stripe.

Stripe has no such endpoints. The tester uses them to make buyers check out
and pay, to move payments on (settle, expire, refund, dispute), to arm
faults and to read what happened. JSON in, JSON out, errors in Stripe's
shape; the endpoints are listed in :mod:`chaos.fake_stripe.app`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.fake_stripe.errors import StripeError, param_invalid
from chaos.fake_stripe.faults import FaultPlan, FaultSpecError
from chaos.fake_stripe.objects import DEFAULT_CARD, Obj, list_object
from chaos.fake_stripe.records import Records
from chaos.fake_stripe.state import KINDS, PAY_OUTCOMES, FakeStripe, LineSpec


@dataclass
class Control:
    """What the control side reads and drives."""

    state: FakeStripe
    faults: FaultPlan
    records: Records


@dataclass(frozen=True)
class ControlCall:
    body: Mapping[str, Any]
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)


ControlHandler = Callable[[Control, ControlCall], Obj]


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *,
           required: bool = False, default: Any = None) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise StripeError(400, f"Missing required field: {name}.", code="parameter_missing",
                              param=name)
        return default
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise param_invalid(name, f"{name} must be a JSON {names}, not {value!r}.")
    return value


def _strings(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = _field(body, name, dict, default={})
    return {str(k): str(v) for k, v in value.items()}


def create_session(ctl: Control, call: ControlCall) -> Obj:
    """``{"amount_total", "currency"?, "metadata"?, "customer_email"?, "client_reference_id"?,
    "line_items"?, "payment_intent_metadata"?, "payment_intent_id"?}``: one line item of
    ``amount_total`` unless ``line_items`` (``[{"name", "unit_amount", "quantity"}]``, or
    ``[{"price", "quantity"}]`` for a Price of the catalogue) are given.
    ``payment_intent_id`` (``pi_...``, unique) is the id the session's PaymentIntent
    gets once paid: chosen in advance, so rows a shop writes before the buyer pays
    can name it (pretix stores the PaymentIntent it created before the redirect)."""
    body = call.body
    currency = _field(body, "currency", str, default="usd")
    raw_items = _field(body, "line_items", list)
    if raw_items:
        specs = []
        for i, item in enumerate(raw_items):
            if not isinstance(item, dict):
                raise param_invalid(f"line_items[{i}]", "each line item is a JSON object "
                                    '{"name", "unit_amount", "quantity"}.')
            price_id = item.get("price")
            if price_id is not None:  # a Price of the catalogue, as a browser checkout sells
                price = ctl.state.get("price", str(price_id), param=f"line_items[{i}][price]")
                product = ctl.state.get("product", price["product"])
                specs.append(LineSpec(name=product["name"], unit_amount=price["unit_amount"],
                                      quantity=_amount(item, "quantity", low=1, default=1),
                                      currency=price["currency"], price_id=price["id"]))
                continue
            specs.append(LineSpec(name=str(item.get("name", f"Item {i + 1}")),
                                  unit_amount=_amount(item, "unit_amount"),
                                  quantity=_amount(item, "quantity", low=1, default=1),
                                  currency=currency))
    else:
        specs = [LineSpec(name="Chaos checkout", unit_amount=_amount(body, "amount_total"),
                          quantity=1, currency=currency)]
    return ctl.state.create_checkout_session(
        line_items=specs, currency=specs[0].currency, metadata=_strings(body, "metadata"),
        customer_email=_field(body, "customer_email", str),
        client_reference_id=_field(body, "client_reference_id", str),
        intent_metadata=_strings(body, "payment_intent_metadata"),
        intent_id=_field(body, "payment_intent_id", str),
    )


def _amount(body: Mapping[str, Any], name: str, *, low: int = 0, default: int | None = None) -> int:
    value = _field(body, name, int, required=default is None, default=default)
    if value < low:
        raise param_invalid(name, f"{name} must be at least {low}, not {value}.")
    return int(value)


def customer_details(session: Obj, *, email: str | None = None, name: str | None = None) -> Obj:
    """What the buyer typed on Stripe's page, set on every session it completes (as on
    Stripe, whether or not the session was created with a ``customer_email``)."""
    return {"address": None, "business_name": None, "email": email
            or session.get("customer_email") or f"buyer+{session['id']}@example.com",
            "individual_name": None, "name": name or "Chaos Buyer", "phone": None,
            "tax_exempt": "none", "tax_ids": []}


def pay(ctl: Control, call: ControlCall) -> Obj:
    """``{"outcome": "paid" | "async_pending" | "async_succeeded" | "async_failed",
    "customer_details"?: {"email"?, "name"?}}``."""
    outcome = _field(call.body, "outcome", str, default="paid")
    typed = _field(call.body, "customer_details", dict, default={})
    session = ctl.state.find(call.path_params["id"])
    if outcome in PAY_OUTCOMES and session is not None and session["object"] == \
            "checkout.session" and session["status"] == "open":  # typed on Stripe's page
        session["customer_details"] = customer_details(
            session, email=_field(typed, "email", str), name=_field(typed, "name", str))
    events = ctl.state.pay(call.path_params["id"], outcome)
    return _with_session(ctl, call, events)


def settle(ctl: Control, call: ControlCall) -> Obj:
    """``{"outcome": "succeeded" | "failed"}`` for a session paid with ``async_pending``."""
    outcome = _field(call.body, "outcome", str, required=True)
    events = ctl.state.settle(call.path_params["id"], outcome)
    return _with_session(ctl, call, events)


def expire(ctl: Control, call: ControlCall) -> Obj:
    _, events = ctl.state.expire(call.path_params["id"])
    return _with_session(ctl, call, events)


def _with_session(ctl: Control, call: ControlCall, events: list[Obj]) -> Obj:
    session = ctl.state.get("checkout.session", call.path_params["id"])
    intent = ctl.state.find(session["payment_intent"] or "")
    return {"events": events, "checkout_session": session, "payment_intent": intent,
            "charge": ctl.state.find(intent["latest_charge"] or "") if intent else None}


def refund(ctl: Control, call: ControlCall) -> Obj:
    """``{"payment_intent" | "charge", "amount"?, "reason"?}``: a refund as if from the dashboard."""
    body = call.body
    amount = _field(body, "amount", int)
    made, events = ctl.state.refund(charge=_field(body, "charge", str),
                                    payment_intent=_field(body, "payment_intent", str),
                                    amount=amount, reason=_field(body, "reason", str))
    return {"refund": made, "charge": ctl.state.find(made["charge"]), "events": events}


def dispute(ctl: Control, call: ControlCall) -> Obj:
    """``{"payment_intent" | "charge", "reason"?}``: the buyer's bank disputes the charge."""
    body = call.body
    made, events = ctl.state.dispute(charge=_field(body, "charge", str),
                                     payment_intent=_field(body, "payment_intent", str),
                                     reason=_field(body, "reason", str, default="fraudulent"))
    return {"dispute": made, "charge": ctl.state.find(made["charge"]), "events": events}


def create_intent(ctl: Control, call: ControlCall) -> Obj:
    """``{"amount", "currency"?, "metadata"?, "receipt_email"?, "description"?}``: a
    PaymentIntent as a shop built on Elements creates it for its buyer (the tester
    plays that shop's server on the ``payment-intent`` journey)."""
    body = call.body
    intent, events = ctl.state.create_payment_intent(
        amount=_amount(body, "amount", low=1), currency=_field(body, "currency", str,
                                                               default="usd"),
        metadata=_strings(body, "metadata"), description=_field(body, "description", str),
        receipt_email=_field(body, "receipt_email", str))
    return {"payment_intent": intent, "events": events}


def cancel_intent(ctl: Control, call: ControlCall) -> Obj:
    """``{}``: the buyer never pays; the PaymentIntent is canceled (``payment_intent.canceled``)."""
    intent, events = ctl.state.cancel_payment_intent(call.path_params["id"],
                                                     reason="abandoned")
    return {"payment_intent": intent, "charge": None, "events": events}


def confirm_intent(ctl: Control, call: ControlCall) -> Obj:
    """``{"payment_method"?}``: the buyer confirms a PaymentIntent in the browser
    (Stripe.js with its ``client_secret``), with the intent's payment method or
    ``pm_card_visa``; a declined card is an answer, not an error."""
    found = ctl.state.get("payment_intent", call.path_params["id"])
    method = _field(call.body, "payment_method", str) or found["payment_method"] or DEFAULT_CARD
    try:
        intent, events = ctl.state.confirm_payment_intent(call.path_params["id"],
                                                          payment_method=method)
        error = None
    except StripeError as exc:
        if not exc.events:
            raise
        intent = ctl.state.get("payment_intent", call.path_params["id"])
        events, error = exc.events, exc.body()["error"]
    return {"payment_intent": intent, "charge": ctl.state.find(intent["latest_charge"] or ""),
            "events": events, "error": error}


def arm_fault(ctl: Control, call: ControlCall) -> Obj:
    try:
        return ctl.faults.arm(call.body).to_data()
    except FaultSpecError as exc:
        raise StripeError(400, f"Cannot arm this fault: {exc}.", param="fault") from None


def list_faults(ctl: Control, call: ControlCall) -> Obj:
    return list_object([r.to_data() for r in ctl.faults.rules], url="/_chaos/faults")


def clear_faults(ctl: Control, call: ControlCall) -> Obj:
    return {"cleared": ctl.faults.clear()}


def clear_fault(ctl: Control, call: ControlCall) -> Obj:
    rule_id = call.path_params["id"]
    if not ctl.faults.clear(rule_id):
        raise StripeError(404, f"No such fault: '{rule_id}'", code="resource_missing", param="id")
    return {"cleared": 1}


def records(ctl: Control, call: ControlCall) -> Obj:
    """``?since=N``: the calls numbered above N (``last_seq`` is the cursor for next time)."""
    raw = call.query.get("since", "0")
    if not isinstance(raw, str) or not raw.isdigit():
        raise param_invalid("since", f"since must be a record number (0 or more), not {raw!r}.")
    data = [r.to_data() for r in ctl.records.since(int(raw))]
    return {**list_object(data, url="/_chaos/records"), "last_seq": ctl.records.last_seq,
            "dropped": ctl.records.dropped}


def objects_of(ctl: Control, call: ControlCall) -> Obj:
    """Every object of a kind, oldest first; ``?metadata[key]=value`` filters on metadata,
    ``?ids[]=ID`` on ids, ``?payment_intents[]=pi_...`` on the object's payment intent
    (the tester reads an example's sessions and charges as they are now), and
    ``?after=ID`` keeps those created after the object ``ID`` (a reader's cursor)."""
    kind = call.path_params["kind"]
    if kind not in KINDS:
        raise StripeError(404, f"No such object kind: {kind!r}; use one of {', '.join(KINDS)}.",
                          code="resource_missing", param="kind")
    wanted = call.query.get("metadata") or {}
    if not isinstance(wanted, dict):
        raise param_invalid("metadata", "filter with metadata[key]=value.")
    candidates = ctl.state.all(kind)
    after = call.query.get("after")
    if after is not None:
        ids = [obj["id"] for obj in candidates]
        if after not in ids:
            raise param_invalid("after", f"after must be the id of a {kind} this fake Stripe "
                                f"holds, not {after!r}.")
        candidates = candidates[ids.index(after) + 1:]
    found = [obj for obj in candidates
             if all((obj.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
    for name, field_name in (("ids", "id"), ("payment_intents", "payment_intent")):
        if name in call.query:
            values = call.query[name]
            if not isinstance(values, list):
                raise param_invalid(name, f"filter with {name}[]=value (repeatable).")
            found = [obj for obj in found if obj.get(field_name) in values]
    return list_object(found, url=f"/_chaos/objects/{kind}")


#: ``(method, path template, handler)``: every endpoint of the control side.
ENDPOINTS: list[tuple[str, str, ControlHandler]] = [
    ("POST", "/_chaos/checkout/sessions", create_session),
    ("POST", "/_chaos/checkout/sessions/{id}/pay", pay),
    ("POST", "/_chaos/checkout/sessions/{id}/settle", settle),
    ("POST", "/_chaos/checkout/sessions/{id}/expire", expire),
    ("POST", "/_chaos/refunds", refund),
    ("POST", "/_chaos/disputes", dispute),
    ("POST", "/_chaos/payment_intents", create_intent),
    ("POST", "/_chaos/payment_intents/{id}/confirm", confirm_intent),
    ("POST", "/_chaos/payment_intents/{id}/cancel", cancel_intent),
    ("POST", "/_chaos/faults", arm_fault),
    ("GET", "/_chaos/faults", list_faults),
    ("DELETE", "/_chaos/faults", clear_faults),
    ("DELETE", "/_chaos/faults/{id}", clear_fault),
    ("GET", "/_chaos/records", records),
    ("GET", "/_chaos/objects/{kind}", objects_of),
]
