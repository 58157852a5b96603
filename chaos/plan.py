"""The plan: turns a scenario into the HTTP calls that play it (it sends nothing:
the executor fires them).

It follows the model's own account of how a scenario is interpreted
(``strategies/_internal/model.py``, "How the executor interprets a
scenario"), in phases fired one after another:

1. **Faults** the scenario arms on the fake Stripe (the runner arms them
   before the first call and always disarms them after the last).
2. **Set-up checkouts**, one buyer at a time in buyer order, for every buyer
   whose own checkout is not timed in the schedule: races happen only where
   the schedule puts them.
3. **Outcomes** of those buyers at the fake Stripe's control API (pay at
   once or asynchronously, expire; then refund or dispute).
4. **Waves** of the schedule (checkout attempts and webhook deliveries),
   each behind one start barrier; after a wave holding a buyer's own timed
   checkout, that buyer's outcome is played before the next wave.

Abstract references ("buyer 2's charge.refunded") are resolved when a phase
is built, from what earlier answers bound in :class:`BuyerBinding`. A step
whose reference never got bound (the buyer's checkout was refused, sold out,
or failed under a fault) is skipped: nothing is sent, and that follows from
what the target answered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from chaos.executor import Call
from chaos.history import CheckoutRef, DeliveryRef, Ref
from chaos.keepalive import WireRequest
from chaos.signing import SignedDelivery, sign
from chaos.target import DEFAULT_INTENT, DEFAULT_SESSION, Target, dig, render_body
from strategies import (
    DEFAULT_EVENT_TYPES,
    EVENT_TYPES,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    partial_refund,
)


class Copy:
    """One event as a webhook delivery carries it in one second: signed, and laid out for
    the load mode's wire (once, on first use: a chaos example sends httpx requests)."""

    __slots__ = ("body", "headers", "_url", "_wire")

    def __init__(self, delivery: SignedDelivery, url: str, headers: Mapping[str, str]) -> None:
        self.body = delivery.body
        #: The target's webhook headers, then the delivery's (its signature).
        self.headers = {**headers, **delivery.headers}
        self._url = url
        self._wire: WireRequest | None = None

    @property
    def wire(self) -> WireRequest:
        if self._wire is None:
            self._wire = WireRequest.make("POST", self._url, self.headers, self.body)
        return self._wire


@dataclass
class BuyerBinding:
    """What a buyer's story bound at run time."""

    session_id: str | None = None
    checkout_url: str | None = None
    payment_intent: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Attempt:
    """One checkout attempt at the target's door: what was sent, what came back."""

    id: int
    buyer: int
    attempt: int
    idempotency_key: str
    unit_price: int          # what the client claimed per ticket
    total: int               # what the client claimed in all
    tampered: bool
    session_id: str | None = None


@dataclass
class Phase:
    """Calls fired together behind one barrier; ``wave`` is the schedule's wave, or None."""

    calls: list[Call]
    wave: int | None = None


@dataclass
class Plan:
    phases: list[Phase]
    bindings: list[BuyerBinding]
    attempts: list[Attempt]
    #: Fault rules for the fake Stripe's ``POST /_chaos/faults``, armed for the whole example.
    faults: list[dict[str, Any]]

    @property
    def setup(self) -> list[list[Call]]:
        return [p.calls for p in self.phases if p.wave is None]

    @property
    def waves(self) -> list[list[Call]]:
        return [p.calls for p in self.phases if p.wave is not None]


def ticket_type_id(event_id: str, index: int) -> str:
    return f"{event_id}-tt{index + 1}"


def checkout_key(event_id: str, buyer: int, attempt: int = 0) -> str:
    """``K(b, a)``: the Idempotency-Key of buyer ``b``'s checkout attempt ``a``."""
    return f"{event_id}-b{buyer + 1}-a{attempt}"


@dataclass(frozen=True)
class Listing:
    """A ticket type as the tool listed it at the fake Stripe on the Stripe journeys:
    a Product under an id the tool chose, its Price and, on ``payment-link``, its link."""

    product_id: str
    price_id: str
    payment_link_id: str | None = None
    payment_link_url: str | None = None

    def values(self) -> dict[str, str]:
        return {"product_id": self.product_id, "price_id": self.price_id,
                "payment_link_id": self.payment_link_id or "",
                "payment_link_url": self.payment_link_url or ""}


#: A ``fixtures.buyer`` column that, when true, says the shop's own checkout turned the
#: buyer away before Stripe (sold out, as pretix's checkout checks its quota): on the Stripe
#: journeys that buyer opens no session and pays nothing.
TURNED_AWAY = "turned_away"


def product_id(event_id: str, index: int) -> str:
    """The Stripe product id the tool gives ticket type ``index`` of ``event_id``, chosen
    before anything is bought so the fixture can store it (as a shop's admin does)."""
    return "prod_" + re.sub(r"[^A-Za-z0-9]", "_", ticket_type_id(event_id, index))


@dataclass(frozen=True)
class FixtureIds:
    """The ids an example's fixture ended up with: the target's own event id and
    ticket type ids (the tool's namespaced ones, or what the fixture SQL returned);
    on the Stripe journeys each ticket type's :class:`Listing`, and what each buyer's
    fixture row returned (its columns are template names)."""

    event: Any
    ticket_types: tuple[Any, ...]
    listings: tuple[Listing, ...] = ()
    buyers: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def default(cls, scenario: Scenario, event_id: str) -> FixtureIds:
        return cls(event_id, tuple(ticket_type_id(event_id, i)
                                   for i in range(len(scenario.ticket_types))))


def checkout_values(scenario: Scenario, event_id: str, buyer: int, *, tamper: str = "none",
                    ids: FixtureIds | None = None) -> dict[str, Any]:
    """The names a checkout body template may use, for ``buyer``, at the price the
    scenario put in the database (the tester wrote the fixture, so it knows), or
    forged: ``tamper="price"`` claims 1 cent a ticket (a consistent forged cart),
    ``tamper="total"`` keeps the prices and claims a total of 1 cent."""
    ids = ids or FixtureIds.default(scenario, event_id)
    who = scenario.buyers[buyer]
    price = scenario.ticket_types[who.ticket_type].price
    if tamper == "price":
        price = 1
    total = 1 if tamper == "total" else price * who.quantity
    values: dict[str, Any] = {
        "event_id": ids.event, "ticket_type_id": ids.ticket_types[who.ticket_type],
        "quantity": who.quantity, "unit_price": price, "total": total,
        "email": f"buyer{buyer + 1}@{event_id}.chaos.test", "name": f"Buyer {buyer + 1}",
        "buyer": buyer + 1}
    if ids.listings:
        values.update(ids.listings[who.ticket_type].values())
    if buyer < len(ids.buyers):
        values.update(ids.buyers[buyer])
    return values


#: A fault kind of the model -> the fake Stripe's rule fields.
_FAULT_RULES: dict[str, dict[str, Any]] = {
    "5xx": {"kind": "error", "status": 500},
    "429": {"kind": "rate-limit", "retry_after": 1},
    "latency": {"kind": "latency"},
    "hang": {"kind": "hang"},
    "lost-answer": {"kind": "lost-answer"},
    "reset": {"kind": "reset"},
}


def fault_rules(fault: Fault, *, hang_seconds: float) -> list[dict[str, Any]]:
    """The fake Stripe rules for one of the model's faults (``"GET /v1/x/{id}"`` -> a
    glob): one per call it plays on, each counting every call to the endpoint."""
    method, _, template = fault.endpoint.partition(" ")
    path = "/".join("*" if part.startswith("{") else part for part in template.split("/"))
    rule = {"method": method, "path": path, **_FAULT_RULES[fault.kind]}
    if fault.kind == "latency":
        rule["seconds"] = fault.latency_ms / 1000
    if fault.kind == "hang":
        rule["max_seconds"] = hang_seconds
    return [{**rule, "nth": nth} for nth in fault.calls]


def _constant(body: dict[str, Any]) -> Callable[[BuyerBinding], dict[str, Any]]:
    return lambda _: body


def _demand_exceeds_capacity(scenario: Scenario) -> set[int]:
    """Ticket types that more checkouts ask for than exist: a 409 is legitimate there."""
    asked: dict[int, int] = {}
    for buyer in scenario.buyers:
        asked[buyer.ticket_type] = asked.get(buyer.ticket_type, 0) + buyer.quantity
    for _, step in scenario.checkouts():
        if step.attempt > 0 and step.key == "fresh":
            buyer = scenario.buyers[step.buyer]
            asked[buyer.ticket_type] = asked.get(buyer.ticket_type, 0) + buyer.quantity
    return {t for t, n in asked.items() if n > scenario.ticket_types[t].capacity}


def drawn_event_types(target: Target | None) -> tuple[str, ...]:
    """The event types a run's schedule delivers: the default ones, or, when the webhook
    endpoint declares its subscription (``[target.webhook] events``), every type a story
    emits that it is subscribed to (a shop that confirms on ``charge.succeeded`` gets
    that event delivered, duplicated and reordered like any other)."""
    if target is None or not target.webhook_events:
        return DEFAULT_EVENT_TYPES
    return tuple(t for t in EVENT_TYPES if target.subscribed(t)) or DEFAULT_EVENT_TYPES


def confirming_event(target: Target | None) -> str:
    """The event type the playbook's deliveries of a completion are aimed at: the
    completion itself when the endpoint is sent completions, else the first event
    type the target confirms payments on (``promises.confirms``) that it is subscribed
    to (``strategies.playbook(confirming=...)``)."""
    completed = "checkout.session.completed"
    if target is None or target.subscribed(completed):
        return completed
    return next((e for e in target.promises.confirms if target.subscribed(e)), completed)


def plan(scenario: Scenario, *, target: Target, stripe_url: str, event_id: str,
         clock: Callable[[], float] = time.time, hang_seconds: float = 10.0,
         ids: FixtureIds | None = None) -> Plan:
    """The example's calls; ``ids`` are the fixture's ids (default: the namespaced ones)."""
    ids = ids or FixtureIds.default(scenario, event_id)
    bindings = [BuyerBinding() for _ in scenario.buyers]
    attempts: list[Attempt] = []
    tight = _demand_exceeds_capacity(scenario)
    # buyers with an extra same-key attempt: their own checkout may meet a legitimate 409
    # ("this key is in progress") or 422 (same key, different body)
    contested = {s.buyer for _, s in scenario.checkouts() if s.attempt > 0 and s.key == "same"}
    # the target is meant to fail while Stripe does: what it answers then is not judged by
    # the thresholds
    under_fault = True if scenario.faults else None

    def checkout(step: Checkout, wave: int | None) -> Call:
        b = step.buyer
        key = checkout_key(event_id, b, step.attempt if step.key == "fresh" else 0)
        values = checkout_values(scenario, event_id, b, tamper=step.tamper, ids=ids)
        body = target.checkout_body(values)
        record = Attempt(id=len(attempts), buyer=b, attempt=step.attempt, idempotency_key=key,
                         unit_price=values["unit_price"], total=values["total"],
                         tampered=step.tamper != "none")
        attempts.append(record)
        expect = "4xx" if record.tampered else "any" if (
            step.attempt > 0 or b in contested or scenario.buyers[b].ticket_type in tight) \
            else None
        ref = CheckoutRef(buyer=b, attempt=step.attempt, attempt_id=record.id,
                          idempotency_key=key, tampered=record.tampered, expect=expect,
                          under_fault=under_fault)
        own = step.attempt == 0 or (step.key == "same" and not record.tampered)

        def bind(session: str, url: str | None) -> None:
            record.session_id = session
            if own and bindings[b].session_id is None:
                bindings[b].session_id = session
                bindings[b].checkout_url = url

        def remember(response: httpx.Response) -> None:
            answer = response.json()
            session = dig(answer, target.session_id_path)
            if not isinstance(session, str) or not session:
                raise ValueError(f"{target.session_id_path} is {session!r}, not a session id")
            try:
                url = dig(answer, target.url_path) if target.url_path else None
            except KeyError:
                url = None
            bind(session, url)

        if target.journey != "endpoint":
            return _stripe_checkout(step, wave, ref, values, bind)
        path = str(render_body(target.checkout_path, values))
        return Call(kind="checkout", door="target", wave=wave, ref=ref,
                    offset=step.offset_ms / 1000,
                    build=lambda: httpx.Request(target.checkout_method, target.base_url + path,
                                                json=body, headers=target.checkout_headers(key)),
                    on_answer=remember)

    def _stripe_checkout(step: Checkout, wave: int | None, ref: CheckoutRef,
                         values: dict[str, Any], bind: Callable[[str, str | None], None]
                         ) -> Call:
        """The buyer begins at Stripe: a session the tool creates (``stripe-session``) or
        a purchase through the ticket type's Payment Link. Nothing the target could
        refuse or price: a tampered cart or a retry under the same key is not sent (a
        browser has no such door); a retry under a fresh key opens a second session."""
        skip = step.tamper != "none" or (step.attempt > 0 and step.key == "same") \
            or bool(values.get(TURNED_AWAY))  # the shop refused before Stripe: sold out
        ref = replace(ref, expect=None, under_fault=None)   # a call at Stripe, not the target
        b = step.buyer
        if target.journey == "payment-intent":
            template = DEFAULT_INTENT if target.intent_template is None \
                else target.intent_template
            intent_body = render_body(template, values)

            def opened(response: httpx.Response) -> None:
                answer = response.json()
                intent_id = answer["payment_intent"]["id"]
                bind(intent_id, None)   # the payment's id on this journey: the PaymentIntent
                if bindings[b].session_id == intent_id:
                    bindings[b].payment_intent = intent_id
                    for event in answer["events"]:
                        bindings[b].events.setdefault(event["type"], event)

            return Call(kind="checkout", door="stripe", wave=wave, ref=ref,
                        offset=step.offset_ms / 1000,
                        build=lambda: None if skip else httpx.Request(
                            "POST", stripe_url + "/_chaos/payment_intents", json=intent_body),
                        on_answer=opened)
        if target.journey == "payment-link":
            where = f"/_chaos/payment_links/{values['payment_link_id']}/checkout"
            body: Any = {"quantity": values["quantity"]}
        else:
            where = "/_chaos/checkout/sessions"
            template = DEFAULT_SESSION if target.session_template is None \
                else target.session_template
            body = render_body(template, values)
        return Call(kind="checkout", door="stripe", wave=wave, ref=ref,
                    offset=step.offset_ms / 1000,
                    build=lambda: None if skip else httpx.Request("POST", stripe_url + where,
                                                                  json=body),
                    on_answer=lambda response: bind(response.json()["id"],
                                                    response.json().get("url")))

    def control(b: int, kind: str, path: Callable[[BuyerBinding], str | None],
                body: Callable[[BuyerBinding], dict[str, Any]] = lambda _: {}) -> Call:
        """A call to the fake Stripe's control API for buyer ``b``'s payment; ``path``
        is None while what it needs is unbound (the buyer's story stopped)."""

        def build() -> httpx.Request | None:
            where = path(bindings[b])
            if where is None:
                return None
            return httpx.Request("POST", stripe_url + where, json=body(bindings[b]))

        def remember(response: httpx.Response) -> None:
            answer = response.json()
            for event in answer["events"]:
                bindings[b].events.setdefault(event["type"], event)
            intent = answer.get("payment_intent")
            if isinstance(intent, dict) and intent.get("id"):
                bindings[b].payment_intent = intent["id"]

        return Call(kind=kind, door="stripe", ref=Ref(buyer=b), build=build, on_answer=remember)

    def session_path(action: str) -> Callable[[BuyerBinding], str | None]:
        return lambda bb: f"/_chaos/checkout/sessions/{bb.session_id}/{action}" \
            if bb.session_id else None

    def payment_path(resource: str) -> Callable[[BuyerBinding], str | None]:
        return lambda bb: f"/_chaos/{resource}" if bb.payment_intent else None

    def the_payment(bb: BuyerBinding) -> dict[str, Any]:
        return {"payment_intent": bb.payment_intent}

    def intent_path(action: str) -> Callable[[BuyerBinding], str | None]:
        return lambda bb: f"/_chaos/payment_intents/{bb.payment_intent}/{action}" \
            if bb.payment_intent else None

    def part_of_the_payment(amount: int) -> Callable[[BuyerBinding], dict[str, Any]]:
        return lambda bb: {"payment_intent": bb.payment_intent, "amount": amount}

    def outcome_phases(buyers: list[int]) -> list[Phase]:
        """The buyers' outcomes at the fake Stripe: pay or expire, then refund or dispute."""
        first, second = [], []
        for b in buyers:
            outcome = scenario.buyers[b].outcome
            if target.journey == "payment-intent":   # the buyer confirms in the browser
                if outcome == "expired":               # ... or never does: canceled
                    first.append(control(b, "stripe.cancel", intent_path("cancel")))
                    continue
                card = "pm_card_chargeDeclined" if outcome == "async-failed" else "pm_card_visa"
                first.append(control(b, "stripe.pay", intent_path("confirm"),
                                     _constant({"payment_method": card})))
            elif outcome == "expired":
                first.append(control(b, "stripe.expire", session_path("expire")))
                continue
            else:
                pay_as = {"async-succeeded": "async_succeeded",
                          "async-failed": "async_failed"}.get(outcome, "paid")
                paying: dict[str, Any] = {"outcome": pay_as}
                if target.journey != "endpoint":  # the buyer types them on Stripe's page
                    values = checkout_values(scenario, event_id, b, ids=ids)
                    paying["customer_details"] = {"email": values["email"],
                                                  "name": values["name"]}
                first.append(control(b, "stripe.pay", session_path("pay"), _constant(paying)))
            if outcome == "refunded":
                second.append(control(b, "stripe.refund", payment_path("refunds"), the_payment))
            elif outcome == "partially-refunded":
                buyer = scenario.buyers[b]
                part = partial_refund(scenario.ticket_types[buyer.ticket_type].price,
                                      buyer.quantity)
                second.append(control(b, "stripe.refund", payment_path("refunds"),
                                      part_of_the_payment(part)))
            elif outcome == "disputed":
                second.append(control(b, "stripe.dispute", payment_path("disputes"), the_payment))
        return [Phase(calls) for calls in (first, second) if calls]

    def deliver(step_index: int, wave: int, step: Delivery) -> Call:
        call = Call(kind="deliver", door="target", wave=wave, step=step_index,
                    ref=DeliveryRef(buyer=step.buyer, event=step.event, copy=step.copy,
                                    signature=step.signature, under_fault=under_fault),
                    offset=step.offset_ms / 1000, build=lambda: None)
        url = target.base_url + webhook_path(step.buyer)
        variant = step.signature or "valid"

        def copy() -> Copy | None:
            binding = bindings[step.buyer]
            event = binding.events.get(step.event)
            if event is None:
                return None  # the story never produced this event (its checkout failed)
            if not target.subscribed(step.event):
                return None  # the endpoint is not subscribed: Stripe never sends it
            obj = event["data"]["object"]
            # the event's real ids, now that they are known, on the call's ref as it is now
            # (the load mode renumbers its buyer, a race marks it)
            call.ref = call.ref.evolved(
                event_id=event["id"], session=binding.session_id,
                payment_intent=binding.payment_intent,
                payment_status=obj.get("payment_status")
                if step.event.startswith("checkout.session.") else None)
            return signed_copy(event, int(clock()), variant, url)

        def build() -> httpx.Request | None:
            sent = copy()
            if sent is None:
                return None
            return httpx.Request("POST", url, content=sent.body, headers=sent.headers)

        def build_wire() -> WireRequest | None:
            sent = copy()
            return None if sent is None else sent.wire

        call.build, call.build_wire = build, build_wire
        return call

    paths: dict[int, str] = {}

    def webhook_path(buyer: int) -> str:
        """The webhook path with ``buyer``'s values filled in, once per buyer."""
        if buyer not in paths:
            paths[buyer] = str(render_body(target.webhook_path,
                                           checkout_values(scenario, event_id, buyer, ids=ids)))
        return paths[buyer]

    #: Per event (kept with it, so its id() stays its own): its JSON, and its copies
    #: signed in one second as one variant.
    events: dict[int, tuple[dict[str, Any], str]] = {}
    copies: dict[tuple[int, int, str], Copy] = {}

    def signed_copy(event: dict[str, Any], now: int, variant: str, url: str) -> Copy:
        """``event`` signed at ``now`` (a second) as ``variant``, for ``url`` (its buyer's
        webhook URL): the copies of one event sent in the same second carry the same bytes,
        as Stripe's would, so each is encoded once, and signed and laid out once a second."""
        key = (id(event), now, variant)
        found = copies.get(key)
        if found is None:
            kept = events.get(id(event))
            if kept is None:
                kept = events[id(event)] = (event, json.dumps(event))
            found = copies[key] = Copy(sign(kept[1], target.webhook_secret, now=now,
                                            variant=variant, old_secret=target.old_secret),
                                       url, target.webhook_headers)
        return found

    phases: list[Phase] = []
    in_setup = [b for b in range(len(scenario.buyers)) if scenario.timed_checkout_wave(b) is None]
    for b in in_setup:
        phases.append(Phase([checkout(Checkout(buyer=b), None)]))
    phases += outcome_phases(in_setup)
    index = 0
    for w, wave in enumerate(scenario.waves):
        calls = []
        for step in wave:
            if isinstance(step, Delivery):
                calls.append(deliver(index, w, step))
            elif isinstance(step, Checkout):
                call = checkout(step, w)
                call.step = index
                calls.append(call)
            else:
                raise ValueError(f"the client cannot play step kind {step.kind!r}")
            index += 1
        phases.append(Phase(calls, wave=w))
        timed = [s.buyer for s in wave if isinstance(s, Checkout) and s.attempt == 0]
        phases += outcome_phases(timed)
    return Plan(phases=phases, bindings=bindings, attempts=attempts,
                faults=[rule for f in scenario.faults
                        for rule in fault_rules(f, hang_seconds=hang_seconds)])
