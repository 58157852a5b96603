"""The client: turns a scenario's abstract steps into HTTP calls.

Set-up plays the buyers' stories: each checks out through the target's
checkout door (the seed's payload, at the database price the scenario set,
with an Idempotency-Key of its own), then pays that session at the fake
Stripe. The schedule's waves are the requests at the target. Abstract
references ("buyer 2's checkout.session.completed") are resolved when a wave
is built, from what earlier answers recorded in :class:`Bindings`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.executor import Call
from chaos.signing import sign
from chaos.target import Target
from strategies import Delivery, Scenario


@dataclass
class BuyerBinding:
    session_id: str | None = None
    checkout_url: str | None = None
    payment_intent: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Plan:
    """Set-up phases (each fired as one concurrent batch) and the schedule's waves."""

    setup: list[list[Call]]
    waves: list[list[Call]]
    bindings: list[BuyerBinding]


def ticket_type_id(event_id: str, index: int) -> str:
    return f"{event_id}-tt{index + 1}"


def checkout_key(event_id: str, buyer: int) -> str:
    """The Idempotency-Key of a buyer's checkout: one per buyer and example."""
    return f"{event_id}-buyer{buyer + 1}"


def checkout_payload(scenario: Scenario, event_id: str, buyer: int) -> dict[str, Any]:
    """The seed's checkout payload for ``buyer``, at the price the scenario put
    in the database (the tester knows it: it wrote the fixture)."""
    who = scenario.buyers[buyer]
    price = scenario.ticket_types[who.ticket_type].price
    return {
        "eventId": event_id,
        "tickets": [{"ticketTypeId": ticket_type_id(event_id, who.ticket_type),
                     "quantity": who.quantity, "price": price}],
        "customerEmail": f"buyer{buyer + 1}@{event_id}.chaos.test",
        "customerName": f"Buyer {buyer + 1}",
        "total": price * who.quantity,
    }


def plan(scenario: Scenario, *, target: Target, stripe_url: str, event_id: str,
         clock: Callable[[], float] = time.time) -> Plan:
    bindings = [BuyerBinding() for _ in scenario.buyers]

    def checkout(b: int) -> Call:
        key = checkout_key(event_id, b)
        body = checkout_payload(scenario, event_id, b)

        def remember(response: httpx.Response) -> None:
            answer = response.json()
            bindings[b].session_id = answer["sessionId"]
            bindings[b].checkout_url = answer.get("url")

        return Call(kind="checkout", door="target", ref={"buyer": b, "idempotency_key": key},
                    build=lambda: httpx.Request("POST", target.base_url + target.checkout_path,
                                                json=body, headers=target.checkout_headers(key)),
                    on_answer=remember)

    def pay(b: int) -> Call:
        def build() -> httpx.Request | None:
            session = bindings[b].session_id
            if session is None:
                return None  # the checkout failed: this buyer's story stops here
            return httpx.Request("POST", f"{stripe_url}/_chaos/checkout/sessions/{session}/pay")

        def remember(response: httpx.Response) -> None:
            for event in response.json()["events"]:
                bindings[b].events[event["type"]] = event
                if event["type"] == "checkout.session.completed":
                    bindings[b].payment_intent = event["data"]["object"]["payment_intent"]

        return Call(kind="stripe.pay", door="stripe", ref={"buyer": b}, build=build,
                    on_answer=remember)

    def deliver(step_index: int, wave: int, step: Delivery) -> Call:
        ref: dict[str, Any] = {"buyer": step.buyer, "event": step.event, "copy": step.copy,
                               "signature": step.signature}

        def build() -> httpx.Request | None:
            binding = bindings[step.buyer]
            event = binding.events.get(step.event)
            if event is None:
                return None  # the story never produced this event (its checkout failed)
            ref.update(event_id=event["id"], payment_intent=binding.payment_intent)
            signed = sign(json.dumps(event), target.webhook_secret, now=int(clock()),
                          variant=step.signature)
            return httpx.Request("POST", target.base_url + target.webhook_path,
                                 content=signed.body, headers=signed.headers)

        return Call(kind="deliver", door="target", wave=wave, step=step_index, ref=ref,
                    build=build)

    buyers = range(len(scenario.buyers))
    waves: list[list[Call]] = []
    index = 0
    for w, wave in enumerate(scenario.waves):
        calls = []
        for step in wave:
            if not isinstance(step, Delivery):  # until the client speaks the full model
                raise ValueError(f"the client cannot fire {step.kind} steps yet")
            calls.append(deliver(index, w, step))
            index += 1
        waves.append(calls)
    return Plan(setup=[[checkout(b) for b in buyers], [pay(b) for b in buyers]],
                waves=waves, bindings=bindings)
