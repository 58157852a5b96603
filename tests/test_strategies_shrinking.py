"""Shrink quality: for a synthetic failure, Hypothesis must end at the one
smallest scenario that still fails: fewest buyers, requests, copies and
waves, the plainest story, valid signatures, no offsets, no faults.

Each test states a failure predicate as a buggy service might trip on it
and asserts the exact scenario ``find`` shrinks to. ``find`` runs
derandomized (and, for one case, under several seeds), so these tests are
deterministic; only generation and shrinking run (no explain phase).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import Phase, find, settings

from strategies import Buyer, Checkout, Delivery, Fault, Scenario, TicketType, scenarios

SKELETON = dict(outcomes=("paid",), event_types=("checkout.session.completed",),
                signatures=("valid",), checkouts=(), max_offset_ms=0, max_faults=0,
                max_ticket_types=1, tight_capacity=False)


def minimal(condition, strategy=None, *, seed: int | None = None) -> Scenario:
    return find(
        scenarios() if strategy is None else strategy, condition,
        settings=settings(max_examples=5000, database=None, derandomize=seed is None,
                          phases=(Phase.generate, Phase.shrink)),
        random=None if seed is None else random.Random(seed),
    )


def deliveries_of(s: Scenario, event: str) -> list[tuple[int, Delivery]]:
    return [(w, d) for w, d in s.deliveries() if d.event == event]


def duplicate_in_one_wave(s: Scenario) -> bool:
    return any(len({(d.buyer, d.event) for _, d in _deliveries(wave)}) < len(_deliveries(wave))
               for wave in s.waves)


def _deliveries(wave) -> list[tuple[int, Delivery]]:
    return [(0, d) for d in wave if isinstance(d, Delivery)]


def delivered_before(s: Scenario, first: str, then: str) -> bool:
    """Some buyer's ``first`` event is delivered in an earlier wave than its ``then``."""
    return any(a.buyer == b.buyer and wa < wb
               for wa, a in deliveries_of(s, first) for wb, b in deliveries_of(s, then))


TWO_COPIES_TOGETHER = Scenario(buyers=(Buyer(),), waves=((Delivery(0), Delivery(0, copy=1)),))


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_two_deliveries_of_one_event_in_one_wave_shrink_to_one_buyer_two_copies(seed):
    assert minimal(duplicate_in_one_wave, seed=seed) == TWO_COPIES_TOGETHER


def test_the_skeleton_space_shrinks_the_same_way():
    """Contract 4: the chaos run's no-dedup failure is 1 buyer and 2 requests."""
    assert minimal(duplicate_in_one_wave, scenarios(**SKELETON)) == TWO_COPIES_TOGETHER


def test_a_refund_delivered_before_its_completion_is_a_two_step_story():
    found = minimal(lambda s: delivered_before(s, "charge.refunded", "checkout.session.completed"))
    assert found == Scenario(buyers=(Buyer(outcome="refunded"),),
                             waves=((Delivery(0, "charge.refunded"),), (Delivery(0),)))


def test_payment_intent_before_completion_keeps_the_plain_paid_story():
    found = minimal(lambda s: delivered_before(s, "payment_intent.succeeded",
                                               "checkout.session.completed"))
    assert found == Scenario(buyers=(Buyer(),),
                             waves=((Delivery(0, "payment_intent.succeeded"),), (Delivery(0),)))


def test_a_tampered_delivery_as_the_only_delivery_of_a_paid_payment():
    def only_delivery_tampered(s: Scenario) -> bool:
        return any(b.outcome == "paid"
                   and [d.signature for _, d in s.deliveries() if d.buyer == i] == ["tampered"]
                   for i, b in enumerate(s.buyers))

    found = minimal(only_delivery_tampered)
    assert found == Scenario(buyers=(Buyer(),), waves=((Delivery(0, signature="tampered"),),))


def test_an_unpaid_completion_is_one_delivery_of_an_async_failed_story():
    def unpaid_completion_delivered(s: Scenario) -> bool:
        return any(s.buyers[d.buyer].outcome == "async-failed"
                   for _, d in deliveries_of(s, "checkout.session.completed"))

    assert minimal(unpaid_completion_delivered) == Scenario(
        buyers=(Buyer(outcome="async-failed"),), waves=((Delivery(0),),))


def test_buyers_racing_for_the_last_ticket_are_two_timed_checkouts():
    def oversubscribed_race(s: Scenario) -> bool:
        for wave in s.waves:
            for t, tt in enumerate(s.ticket_types):
                racers = [c.buyer for c in wave if isinstance(c, Checkout) and c.attempt == 0
                          and s.buyers[c.buyer].ticket_type == t]
                if len(racers) >= 2 and sum(s.buyers[b].quantity for b in racers) > tt.capacity:
                    return True
        return False

    assert minimal(oversubscribed_race) == Scenario(
        ticket_types=(TicketType(capacity=1),), buyers=(Buyer(), Buyer()),
        waves=((Checkout(0), Checkout(1)),))


def test_a_double_click_is_the_own_checkout_and_a_same_key_attempt_together():
    def double_click(s: Scenario) -> bool:
        return any(isinstance(a, Checkout) and a.attempt == 0 and isinstance(b, Checkout)
                   and b.buyer == a.buyer and b.attempt > 0 and b.key == "same"
                   for wave in s.waves for a in wave for b in wave)

    assert minimal(double_click) == Scenario(
        buyers=(Buyer(),), waves=((Checkout(0), Checkout(0, attempt=1)),))


def test_a_forged_cart_is_one_tampered_attempt():
    def tampered_price(s: Scenario) -> bool:
        return any(c.tamper == "price" for _, c in s.checkouts())

    # with a fresh key: with the buyer's own key it would race the buyer's checkout for
    # that key, and a failure found that way would shrink toward a race, not a proof
    assert minimal(tampered_price) == Scenario(
        buyers=(Buyer(),), waves=((Checkout(0, attempt=1, key="fresh", tamper="price"),),))


def test_a_redelivery_while_the_first_is_in_flight_starts_1_ms_later():
    def redelivered_in_flight(s: Scenario) -> bool:
        return any(isinstance(d, Delivery) and d.copy > 0 and d.offset_ms > 0
                   and any(isinstance(e, Delivery) and (e.buyer, e.event) == (d.buyer, d.event)
                           and e.offset_ms < d.offset_ms for e in wave)
                   for wave in s.waves for d in wave)

    assert minimal(redelivered_in_flight) == Scenario(
        buyers=(Buyer(),), waves=((Delivery(0), Delivery(0, copy=1, offset_ms=1)),))


def test_a_fault_alone_needs_no_request():
    found = minimal(lambda s: any(f.kind == "hang" for f in s.faults))
    assert found == Scenario(buyers=(Buyer(),), waves=(), faults=(Fault("hang"),))



# -- swarm testing -----------------------------------------------------------

def refund_of_seats_after_completion(s: Scenario) -> bool:
    for b, buyer in enumerate(s.buyers):
        sent = [(w, d.event) for w, d in s.deliveries() if d.buyer == b]
        completed = [w for w, e in sent if e == "checkout.session.completed"]
        if buyer.outcome == "refunded" and buyer.quantity > 1 and completed and any(
                e == "charge.refunded" and w > completed[0] for w, e in sent):
            return True
    return False


def test_a_swarm_scenario_shrinks_to_the_plain_story():
    found = minimal(lambda s: s.requests >= 1, scenarios(swarm=True))
    assert found == Scenario(buyers=(Buyer(),), waves=((Delivery(0),),))


def test_a_swarm_refund_of_two_seats_after_the_completion_shrinks_to_that_story():
    from strategies import simplifications

    found = minimal(refund_of_seats_after_completion, scenarios(swarm=True))
    # Hypothesis stops at the whole story, told in order (it cannot drop one of its
    # events); the search's minimizer, applied greedily, takes the rest
    assert found.buyers == (Buyer(quantity=2, outcome="refunded"),) and found.requests <= 3
    improved = True
    while improved:
        improved = False
        for candidate in simplifications(found):
            if refund_of_seats_after_completion(candidate):
                found, improved = candidate, True
                break
    assert found == Scenario(buyers=(Buyer(quantity=2, outcome="refunded"),),
                             waves=((Delivery(0),), (Delivery(0, event="charge.refunded"),)))
