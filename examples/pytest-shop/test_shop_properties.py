"""The shop under drawn scenarios: payment-chaos' Hypothesis strategies in a plain test.

``strategies.scenarios()`` draws buyers' stories (paid, refunded, ...) and a schedule
of webhook deliveries (copies, order, forged signatures). This test plays each story
at the fake Stripe, delivers the schedule one request at a time, and checks the
shop's promise: no order ever holds more tickets than were bought, and a forged
delivery is refused. Hypothesis shrinks a failure to the fewest buyers and copies.
"""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import Phase, given, note, settings

from chaos.signing import ACCEPTED
from strategies import Checkout, Scenario, scenarios

#: The events this shop is subscribed to, and the stories that produce them.
EVENTS = ("checkout.session.completed", "charge.refunded")
STORIES = ("paid", "refunded", "expired")


# derandomized: the same scenarios every run (CI); no "explain" phase: it traces every line
# of the shop and its clients on each re-run, which costs more than the search itself
@settings(max_examples=40, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(scenarios(max_buyers=2, outcomes=STORIES, event_types=EVENTS, max_faults=0,
                 max_requests=6))
def test_no_order_holds_more_tickets_than_were_bought(shop, fake_stripe_server, scenario: Scenario):
    note("\n".join(scenario.render()))      # the failing scenario in words, with the failure
    with fake_stripe_server.scoped() as fake_stripe:
        orders, events = [], []
        for buyer in scenario.buyers:
            placed = httpx.post(f"{shop.url}/orders", json={"quantity": buyer.quantity},
                                timeout=30).json()
            story = play(fake_stripe, placed["session"], buyer.outcome)
            orders.append((placed["order"], buyer.quantity))
            events.append({e["type"]: e for e in story})

        for wave in scenario.waves:
            for step in wave:
                if isinstance(step, Checkout):   # this shop's checkout takes no retry key
                    continue
                event = events[step.buyer].get(step.event)
                if event is None:
                    continue
                answer = fake_stripe.deliver(event, f"{shop.url}/webhook",
                                             variant=step.signature)
                forged = step.signature not in ACCEPTED   # stripe-python takes these three
                assert (answer.status_code == 400) == forged, (step.describe(), answer.text)

        held = {r["order_id"]: r["n"] for r in shop.db.rows(
            "select order_id, count(*) as n from tickets where order_id = any($1::int[]) "
            "group by order_id", [order_id for order_id, _ in orders])}
        for order_id, quantity in orders:
            assert held.get(order_id, 0) <= quantity, \
                f"order {order_id} bought {quantity} tickets, holds {held[order_id]}"


def play(fake_stripe: Any, session_id: str, outcome: str) -> list[dict[str, Any]]:
    """The buyer's story at Stripe; the events it emitted."""
    if outcome == "expired":
        return list(fake_stripe.expire(session_id).events)
    events = list(fake_stripe.pay(session_id).events)
    if outcome == "refunded":
        events += fake_stripe.refund(session_id).events
    return events
