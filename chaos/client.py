"""The client: turns a scenario's abstract steps into HTTP calls.

Set-up plays the buyers (each checks out and pays at the fake Stripe); the
schedule's waves are the requests at the target. Abstract references
("buyer 2's checkout.session.completed") are resolved when a wave is built,
from what earlier answers recorded in :class:`Bindings`.
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


def plan(scenario: Scenario, *, target: Target, stripe_url: str, event_id: str,
         clock: Callable[[], float] = time.time) -> Plan:
    bindings = [BuyerBinding() for _ in scenario.buyers]

    def create_session(b: int) -> Call:
        buyer = scenario.buyers[b]
        price = scenario.ticket_types[buyer.ticket_type].price
        body = {
            "amount_total": price * buyer.quantity,
            "currency": "usd",
            "customer_email": f"buyer{b + 1}@{event_id}.chaos.test",
            "metadata": {
                "event_id": event_id,
                "ticket_type_id": ticket_type_id(event_id, buyer.ticket_type),
                "quantity": str(buyer.quantity),
                "buyer": str(b + 1),
            },
        }

        def remember(response: httpx.Response) -> None:
            bindings[b].session_id = response.json()["id"]

        return Call(kind="stripe.create_session", door="stripe", ref={"buyer": b},
                    build=lambda: httpx.Request("POST", f"{stripe_url}/_chaos/checkout/sessions",
                                                json=body),
                    on_answer=remember)

    def pay(b: int) -> Call:
        def build() -> httpx.Request:
            session = bindings[b].session_id
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

        def build() -> httpx.Request:
            binding = bindings[step.buyer]
            event = binding.events[step.event]
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
    return Plan(setup=[[create_session(b) for b in buyers], [pay(b) for b in buyers]],
                waves=waves, bindings=bindings)
