"""The scenario strategies: what they generate, how it shrinks, how it prints."""

from __future__ import annotations

import json

import pytest
from hypothesis import find, given, settings
from hypothesis.errors import InvalidArgument

from strategies import Buyer, Delivery, Scenario, busy_night, scenarios


def minimal(strategy, condition):
    return find(strategy, condition, settings=settings(max_examples=2000, database=None))


def duplicate_in_one_wave(s: Scenario) -> bool:
    return any(len({(d.buyer, d.event) for d in wave}) < len(wave) for wave in s.waves)


def test_shrinks_concurrent_duplicates_to_two_deliveries_of_one_event():
    found = minimal(scenarios(), duplicate_in_one_wave)
    assert found == Scenario(buyers=(Buyer(quantity=1),),
                             waves=((Delivery(buyer=0, copy=0), Delivery(buyer=0, copy=1)),))
    assert found.requests == 2


def test_shrinks_sequential_duplicates_to_two_waves_of_one_delivery():
    def sequential_duplicate(s: Scenario) -> bool:
        return len(s.waves) >= 2 and any(d.copy == 1 for d in s.waves[1])

    found = minimal(scenarios(), sequential_duplicate)
    assert found.waves == ((Delivery(buyer=0, copy=0),), (Delivery(buyer=0, copy=1),))
    assert found.buyers == (Buyer(quantity=1),)


def test_shrinks_quantity_toward_one():
    found = minimal(scenarios(), lambda s: sum(b.quantity for b in s.buyers) >= 3)
    assert found.buyers == (Buyer(quantity=3),)
    assert found.requests == 1


@given(scenarios(max_buyers=5, max_copies=4, max_waves=3))
def test_every_buyer_is_delivered_and_copies_count_in_send_order(s: Scenario):
    s.validate()
    assert {d.buyer for _, d in s.steps()} == set(range(len(s.buyers)))
    assert all(wave for wave in s.waves)
    for b in range(len(s.buyers)):
        copies = [d.copy for _, d in s.steps() if d.buyer == b]
        assert copies == list(range(len(copies)))
    assert 1 <= len(s.waves) <= 3


@given(scenarios())
def test_scenarios_round_trip_through_json(s: Scenario):
    assert Scenario.from_data(json.loads(json.dumps(s.to_data()))) == s


def test_same_seed_same_scenarios():
    def draw(seed: int) -> list[Scenario]:
        seen: list[Scenario] = []

        @settings(max_examples=25, database=None, derandomize=False)
        @given(scenarios())
        def collect(s):
            seen.append(s)

        from hypothesis import seed as with_seed
        with_seed(seed)(collect)()
        return seen

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_rendering_numbers_each_request():
    lines = Scenario(buyers=(Buyer(quantity=2),),
                     waves=((Delivery(0), Delivery(0, copy=1)),)).render()
    assert lines == [
        "event: ticket type 1 at 25.00, capacity 1000",
        "buyer 1 checks out and pays for 2 tickets of type 1",
        "wave 1 (2 requests, together):",
        "  1. deliver buyer 1's checkout.session.completed (1st copy)",
        "  2. deliver buyer 1's checkout.session.completed (2nd copy)",
    ]


def test_busy_night_is_one_wave_of_distinct_buyers():
    s = busy_night(50)
    assert len(s.waves) == 1 and s.requests == 50
    assert {d.buyer for d in s.waves[0]} == set(range(50))


@pytest.mark.parametrize("kwargs, message", [
    ({"max_buyers": 0}, "max_buyers=0 < 1"),
    ({"max_copies": -1}, "max_copies=-1 < 1"),
    ({"max_waves": 1.5}, "max_waves=1.5 must be an integer"),
    ({"max_quantity": True}, "max_quantity=True must be an integer"),
])
def test_invalid_arguments_are_refused_when_built(kwargs, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        scenarios(**kwargs)


@pytest.mark.parametrize("data, message", [
    ({"buyers": [], "waves": []}, "at least one buyer"),
    ({"buyers": [{"quantity": 1}], "waves": [[{"kind": "deliver", "buyer": 3}]]},
     "names a buyer that does not exist"),
    ({"buyers": [{"quantity": 0}], "waves": []}, "quantity 0"),
    ({"buyers": [{"quantity": 1}], "waves": [[{"kind": "teleport"}]]}, "unknown step kind"),
    ({"waves": []}, "not a scenario"),
])
def test_bad_scenario_data_names_the_problem(data, message):
    with pytest.raises(ValueError, match=message):
        Scenario.from_data(data)
