"""The scenario minimizer: one-step simplifications, applied greedily, reach
the smallest story a synthetic failure needs, from big drawn scenarios."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import (
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    TicketType,
    scenarios,
    simplifications,
)
from strategies._internal.simplify import normalize


def greedy(scenario: Scenario, fails: Callable[[Scenario], bool]) -> tuple[Scenario, int]:
    """What chaos.search does with a real target; returns the result and the runs it took."""
    runs = 0
    improved = True
    while improved:
        improved = False
        for candidate in simplifications(scenario):
            runs += 1
            if fails(candidate):
                scenario, improved = candidate, True
                break
    return scenario, runs


def duplicate_completion(s: Scenario) -> bool:
    return any(d.event == "checkout.session.completed" and d.copy == 1 for _, d in s.deliveries())


def tampered_price(s: Scenario) -> bool:
    return any(c.tamper == "price" for _, c in s.checkouts())


def refund_before_completion(s: Scenario) -> bool:
    for b in range(len(s.buyers)):
        order = [d.event for _, d in s.deliveries() if d.buyer == b]
        if "charge.refunded" in order and "checkout.session.completed" in order[
                order.index("charge.refunded"):]:
            return True
    return False


@settings(max_examples=60, deadline=None)
@given(scenarios(max_buyers=4).filter(duplicate_completion))
def test_a_duplicate_completion_minimizes_to_two_copies_of_one_payment(s: Scenario):
    found, _ = greedy(s, duplicate_completion)
    assert found == Scenario(buyers=(Buyer(),),
                             waves=((Delivery(0), Delivery(0, copy=1)),))


@settings(max_examples=60, deadline=None)
@given(scenarios(max_buyers=4).filter(tampered_price))
def test_a_tampered_cart_minimizes_to_one_attempt(s: Scenario):
    found, _ = greedy(s, tampered_price)
    assert len(found.buyers) == 1 and found.buyers[0] == Buyer()
    [(_, step)] = found.steps()
    assert isinstance(step, Checkout) and step.tamper == "price" and step.attempt == 1
    assert found.faults == () and found.ticket_types == (TicketType(),)


@settings(max_examples=40, deadline=None)
@given(scenarios(max_buyers=4, outcomes=("refunded", "paid")).filter(refund_before_completion))
def test_a_refund_before_its_completion_minimizes_to_those_two_deliveries(s: Scenario):
    found, _ = greedy(s, refund_before_completion)
    assert found.buyers == (Buyer(outcome="refunded"),)
    assert [(w, d.event) for w, d in found.deliveries()] == [
        (0, "charge.refunded"), (0, "checkout.session.completed")]


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_every_simplification_is_valid_normalized_and_new(s: Scenario):
    seen = set()
    for candidate in simplifications(s):
        candidate.validate()
        assert candidate == normalize(candidate)
        assert candidate != s and candidate not in seen
        seen.add(candidate)


def test_a_dropped_step_renumbers_the_copies_after_it():
    s = Scenario(buyers=(Buyer(),), waves=((Delivery(0),), (Delivery(0, copy=1),),
                                            (Delivery(0, copy=2, signature="stale"),)))
    first = next(simplifications(s))
    assert first.waves == ((Delivery(0, copy=0),), (Delivery(0, copy=1, signature="stale"),))


def test_a_fault_is_dropped_before_its_fields_are_simplified():
    s = Scenario(buyers=(Buyer(),), waves=((Delivery(0),),),
                 faults=(Fault(kind="latency", nth=3, latency_ms=800),))
    faults = [c.faults for c in simplifications(s)]
    dropped = faults.index(())
    simpler = faults.index((Fault(kind="latency", nth=1, latency_ms=800),))
    assert dropped < simpler


def test_the_smallest_story_has_no_simplification_left():
    assert list(simplifications(Scenario(buyers=(Buyer(),), waves=()))) == []


@given(st.data())
def test_greedy_minimizing_ends(data):
    s = data.draw(scenarios())
    found, runs = greedy(s, lambda _: True)
    assert list(simplifications(found)) == []
    assert runs < 2000
