"""The scenario model and its strategies: what they generate, how it prints,
how it is stored, and what they refuse. Shrink quality is in
``test_strategies_shrinking.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as with_seed
from hypothesis.errors import InvalidArgument

import strategies
from strategies import (
    CHECKOUTS,
    DEFAULT_EVENT_TYPES,
    FAULT_KINDS,
    OUTCOMES,
    SIGNATURES,
    TARGETS,
    Buyer,
    Checkout,
    Delivery,
    Fault,
    Scenario,
    TicketType,
    busy_night,
    buyers,
    checkouts,
    deliveries,
    faults,
    scenarios,
    schedules,
    signatures,
    story_events,
    targets,
    ticket_types,
)
from strategies._internal.model import partial_refund, story_slots

ROOT = Path(__file__).resolve().parent.parent

#: The bounds chaos/cli.py uses until the client speaks the full model.
SKELETON = dict(outcomes=("paid",), event_types=("checkout.session.completed",),
                signatures=("valid",), checkouts=(), max_offset_ms=0, max_faults=0,
                max_ticket_types=1, tight_capacity=False)


# --- what is generated ----------------------------------------------------------------------

@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_scenario_is_valid_and_survives_json(s: Scenario):
    s.validate()
    assert Scenario.from_data(json.loads(json.dumps(s.to_data()))) == s
    assert all(wave for wave in s.waves)
    assert s.requests == len(s.steps()) == sum(len(w) for w in s.waves)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_buyers=2, max_quantity=2, max_ticket_types=1, max_requests=5,
                 max_waves=2, max_copies=2, max_concurrency=3, max_offset_ms=20, max_faults=1))
def test_bounds_hold(s: Scenario):
    assert 1 <= len(s.buyers) <= 2 and len(s.ticket_types) == 1 and len(s.faults) <= 1
    assert all(b.quantity <= 2 for b in s.buyers)
    assert s.requests <= 5 and len(s.waves) <= 2
    assert all(len(wave) <= 3 for wave in s.waves)
    assert all(step.offset_ms <= 20 for _, step in s.steps())
    assert all(d.copy < 2 for _, d in s.deliveries())


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(**SKELETON))
def test_the_skeleton_bounds_give_only_what_the_client_speaks(s: Scenario):
    assert len(s.ticket_types) == 1 and s.ticket_types[0].capacity == 1000 and s.faults == ()
    assert all(b.outcome == "paid" for b in s.buyers)
    assert all(isinstance(step, Delivery) and step.event == "checkout.session.completed"
               and step.signature == "valid" and step.offset_ms == 0 for _, step in s.steps())


def test_the_whole_space_is_generated():
    """Every outcome, event type, signature variant, checkout kind, fault kind
    and endpoint appears within 300 examples of a fixed seed."""
    seen: dict[str, set[str]] = {k: set() for k in
                                 ("outcome", "event", "signature", "checkout", "fault", "endpoint")}
    shapes = set()

    @with_seed(11)
    @settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck))
    @given(scenarios())
    def collect(s: Scenario):
        seen["outcome"] |= {b.outcome for b in s.buyers}
        for _, step in s.steps():
            if isinstance(step, Delivery):
                seen["event"].add(step.event)
                seen["signature"].add(step.signature)
                if step.offset_ms and step.copy:
                    shapes.add("redelivery in flight")
            elif step.attempt == 0:
                seen["checkout"].add("timed")
            elif step.tamper != "none":
                seen["checkout"].add(f"tampered-{step.tamper}")
            else:
                seen["checkout"].add(f"{step.key}-key")
        seen["fault"] |= {f.kind for f in s.faults}
        seen["endpoint"] |= {f.endpoint for f in s.faults}
        if any(tt.capacity < 1000 for tt in s.ticket_types):
            shapes.add("tight capacity")
        if targets(s)["events-out-of-order"]:
            shapes.add("reordered")
        if len(s.waves) > 1:
            shapes.add("several waves")

    collect()
    assert seen == {"outcome": set(OUTCOMES), "event": set(DEFAULT_EVENT_TYPES),
                    "signature": set(SIGNATURES), "checkout": set(CHECKOUTS),
                    "fault": set(FAULT_KINDS), "endpoint": set(strategies.STRIPE_ENDPOINTS)}
    assert shapes == {"redelivery in flight", "tight capacity", "reordered", "several waves"}


def _first_scenarios(seed: int) -> list[Scenario]:
    seen: list[Scenario] = []

    @with_seed(seed)
    @settings(max_examples=25, database=None, derandomize=False)
    @given(scenarios())
    def collect(s: Scenario):
        seen.append(s)

    collect()
    return seen


def test_same_seed_same_scenarios():
    assert _first_scenarios(7) == _first_scenarios(7)
    assert _first_scenarios(7) != _first_scenarios(8)


def test_same_seed_same_scenarios_in_fresh_processes():
    """Run after run: new interpreters, different hash seeds, same scenarios."""
    code = ("import json, tests.test_strategies as t; "
            "print(json.dumps([s.to_data() for s in t._first_scenarios(7)]))")
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == [s.to_data() for s in _first_scenarios(7)]


@settings(max_examples=50)
@given(buyers(max_quantity=3, ticket_type_count=2, outcomes=("refunded", "expired")))
def test_buyers_respect_their_bounds(b: Buyer):
    assert 1 <= b.quantity <= 3 and b.ticket_type in (0, 1) and b.outcome in ("refunded", "expired")


@settings(max_examples=50)
@given(deliveries((Buyer(outcome="expired"), Buyer(outcome="refunded")),
                  event_types=("charge.refunded", "checkout.session.expired"),
                  signatures=("stale", "missing")))
def test_deliveries_name_an_allowed_event_of_that_buyers_story(d: Delivery):
    assert (d.buyer, d.event) in {(0, "checkout.session.expired"), (1, "charge.refunded")}
    assert d.signature in ("stale", "missing") and d.copy == 0


@settings(max_examples=50)
@given(checkouts((Buyer(), Buyer()), kinds=("fresh-key", "tampered-total")))
def test_checkouts_are_extra_attempts_of_the_allowed_kinds(c: Checkout):
    assert c.buyer in (0, 1) and c.attempt == 1
    assert (c.key, c.tamper) == ("fresh", "none") or c.tamper == "total"


@settings(max_examples=50)
@given(faults(kinds=("latency",), endpoints=("GET /v1/events/{id}",), max_nth=2,
              max_latency_ms=50))
def test_faults_respect_their_bounds(f: Fault):
    assert f.kind == "latency" and f.endpoint == "GET /v1/events/{id}"
    assert 1 <= f.nth <= 2 and 1 <= f.latency_ms <= 50


@settings(max_examples=50)
@given(faults(max_nth=1, max_times=3))
def test_an_outage_is_calls_in_a_row(f: Fault):
    assert f.nth == 1 and 1 <= f.times <= 3 and f.calls == range(1, 1 + f.times)


def _drawn_faults(strategy) -> list[Fault]:
    drawn: list[Fault] = []

    @with_seed(3)
    @settings(max_examples=300, database=None)
    @given(strategy)
    def draw(f: Fault) -> None:
        drawn.append(f)

    draw()
    return drawn


def test_drawn_faults_mostly_land_where_the_target_calls():
    session = "GET /v1/checkout/sessions/{id}"
    drawn = _drawn_faults(faults(called=(session,)))
    share = sum(f.endpoint == session for f in drawn) / len(drawn)
    blind = sum(f.endpoint == session for f in _drawn_faults(faults())) / len(drawn)
    # three in four from what the target called (nominally; Hypothesis' own choices are
    # not uniform), one in four from all six endpoints
    assert share >= 0.5 and share >= 3 * blind, (share, blind)
    assert {f.endpoint for f in drawn} - {session}, "the others stay reachable"
    outages = [f for f in drawn if f.times > 1]
    assert 0.3 <= len(outages) / len(drawn) <= 0.7
    assert all(f.nth == 1 and f.times == 5 for f in outages)   # down from the first call
    assert Fault(endpoint=session, times=3).describe() == (
        f"the target's 1st to 3rd calls to {session} (an outage) each answer 500")


@settings(max_examples=50)
@given(schedules((Buyer(),), max_requests=4, max_waves=1, checkouts=()))
def test_schedules_respect_their_bounds(waves):
    assert len(waves) <= 1 and sum(map(len, waves)) <= 4
    Scenario(buyers=(Buyer(),), waves=waves).validate()


@settings(max_examples=50)
@given(ticket_types(tight_capacity=False), signatures(variants=("valid",)))
def test_single_choices(tt: TicketType, variant: str):
    assert tt.capacity == 1000 and variant == "valid"


def test_empty_choices_give_nothing_to_place():
    assert deliveries((Buyer(outcome="expired"),), event_types=()).is_empty
    assert checkouts((Buyer(),), kinds=()).is_empty
    assert checkouts((), kinds=CHECKOUTS).is_empty


# --- the stories ----------------------------------------------------------------------------

@pytest.mark.parametrize("outcome, events", [
    ("paid", ("checkout.session.completed", "payment_intent.succeeded",
              "charge.succeeded", "payment_intent.created")),
    ("async-succeeded", ("checkout.session.completed", "payment_intent.succeeded",
                         "checkout.session.async_payment_succeeded",
                         "charge.succeeded", "payment_intent.created", "charge.pending",
                         "payment_intent.processing")),
    ("async-failed", ("checkout.session.completed", "checkout.session.async_payment_failed",
                      "charge.failed", "payment_intent.payment_failed",
                      "payment_intent.created", "charge.pending", "payment_intent.processing")),
    ("expired", ("checkout.session.expired",)),
    ("refunded", ("checkout.session.completed", "payment_intent.succeeded", "charge.refunded",
                  "charge.succeeded", "refund.created", "payment_intent.created")),
    ("disputed", ("checkout.session.completed", "payment_intent.succeeded",
                  "charge.dispute.created", "charge.succeeded", "payment_intent.created")),
])
def test_each_outcome_emits_the_events_stripe_would(outcome, events):
    assert story_events(outcome) == events == Buyer(outcome=outcome).events
    # the default ones first, so allowing the others moves no slot
    defaults = [e for e in events if e in DEFAULT_EVENT_TYPES]
    assert list(events[:len(defaults)]) == defaults


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_story_names_exactly_what_the_fake_stripe_emits(outcome):
    """The executor binds a story's events from the fake Stripe's answers: every
    event a step may name must be one the fake emits for that outcome."""
    from chaos.fake_stripe.state import FakeStripe, LineSpec

    fake = FakeStripe(prefix="story")
    session = fake.create_checkout_session(line_items=[LineSpec("GA", 2500, 1)])
    if outcome == "expired":
        _, events = fake.expire(session["id"])
    else:
        events = fake.pay(session["id"], {"async-succeeded": "async_succeeded",
                                          "async-failed": "async_failed"}.get(outcome, "paid"))
        intent = fake.get("checkout.session", session["id"])["payment_intent"]
        if outcome == "refunded":
            events += fake.refund(payment_intent=intent)[1]
        elif outcome == "partially-refunded":
            events += fake.refund(payment_intent=intent, amount=partial_refund(2500, 1))[1]
            charge = fake.find(fake.get("payment_intent", intent)["latest_charge"])
            assert charge["refunded"] is False and charge["amount_refunded"] == 1250
        elif outcome == "disputed":
            events += fake.dispute(payment_intent=intent)[1]
    assert sorted(e["type"] for e in events) == sorted(story_events(outcome))


def test_schedules_deliver_other_stripe_events_only_when_asked():
    wanted = ("charge.succeeded", "payment_intent.succeeded")
    seen: set[str] = set()

    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(scenarios(event_types=wanted, outcomes=("paid",), checkouts=(), max_faults=0))
    def collect(s: Scenario) -> None:
        s.validate()
        seen.update(step.event for _, step in s.deliveries())

    collect()
    assert seen == set(wanted)
    assert story_slots(DEFAULT_EVENT_TYPES) == 3 and story_slots(wanted) == 2
    with pytest.raises(InvalidArgument, match="'charge.captured', which is not one of"):
        scenarios(event_types=("charge.captured",)).validate()


def test_an_unknown_outcome_is_named():
    with pytest.raises(ValueError, match="unknown outcome 'lost': choose from paid"):
        story_events("lost")


# --- rendering ------------------------------------------------------------------------------

def test_rendering_numbers_each_request():
    lines = Scenario(buyers=(Buyer(quantity=2),),
                     waves=((Delivery(0), Delivery(0, copy=1)),)).render()
    assert lines == [
        "event: ticket type 1 at 25.00, capacity 1000",
        "buyer 1 checks out and pays for 2 tickets of type 1 "
        "(Stripe emits checkout.session.completed, payment_intent.succeeded, charge.succeeded, "
        "payment_intent.created)",
        "wave 1 (2 requests, together):",
        "  1. deliver buyer 1's checkout.session.completed (1st copy)",
        "  2. deliver buyer 1's checkout.session.completed (2nd copy)",
    ]


def test_rendering_tells_the_whole_story():
    s = Scenario(
        ticket_types=(TicketType(price=4000, capacity=1), TicketType()),
        buyers=(Buyer(outcome="refunded"), Buyer(ticket_type=0, outcome="async-failed"),
                Buyer(quantity=3, ticket_type=1, outcome="expired")),
        waves=(
            (Checkout(1), Delivery(0, "charge.refunded"),
             Checkout(1, attempt=1, key="same", offset_ms=5)),
            (Delivery(0, signature="stale"), Delivery(1), Delivery(0, copy=1, offset_ms=20),
             Checkout(2, attempt=1, key="fresh", tamper="price", offset_ms=20)),
        ),
        faults=(Fault("5xx", "POST /v1/checkout/sessions", 2),
                Fault("latency", "GET /v1/events/{id}", 1, latency_ms=1500)),
    )
    s.validate()
    assert s.render() == [
        "event: ticket type 1 at 40.00, capacity 1 (buyers want 2)",
        "event: ticket type 2 at 25.00, capacity 1000",
        "fault: the target's 2nd call to POST /v1/checkout/sessions answers 500",
        "fault: the target's 1st call to GET /v1/events/{id} answers after 1500 ms",
        "buyer 1 checks out and pays for 1 ticket of type 1, then is refunded (Stripe emits "
        "checkout.session.completed, payment_intent.succeeded, charge.refunded, "
        "charge.succeeded, refund.created, payment_intent.created)",
        "buyer 2 checks out at step 1 (wave 1) for 1 ticket of type 1, pays asynchronously, "
        "and the payment fails (Stripe emits checkout.session.completed, "
        "checkout.session.async_payment_failed, charge.failed, payment_intent.payment_failed, "
        "payment_intent.created, charge.pending, payment_intent.processing)",
        "buyer 3 checks out for 3 tickets of type 2 and never pays, so the session expires "
        "(Stripe emits checkout.session.expired)",
        "wave 1 (3 requests, together):",
        "  1. buyer 2 checks out (1st attempt)",
        "  2. deliver buyer 1's charge.refunded (1st copy)",
        "  3. buyer 2 checks out again with the same idempotency key "
        "(2nd attempt, fired 5 ms into the wave)",
        "wave 2 (4 requests, together):",
        "  4. deliver buyer 1's checkout.session.completed (1st copy, signature stale)",
        "  5. deliver buyer 2's checkout.session.completed (1st copy)",
        "  6. deliver buyer 1's checkout.session.completed (2nd copy, fired 20 ms into the wave)",
        "  7. buyer 3 checks out again with a fresh idempotency key, sending a tampered price "
        "(2nd attempt, fired 20 ms into the wave)",
    ]
    assert s.requests == 7 and s.timed_checkout_wave(1) == 0 and s.timed_checkout_wave(0) is None


def test_busy_night_is_the_seeds_two_load_tests():
    s = busy_night(50)
    s.validate()
    checkouts, deliveries = s.waves
    assert s.requests == 100
    assert [(c.kind, c.buyer, c.attempt) for c in checkouts] == [("checkout", b, 0) for b in range(50)]
    assert [(d.kind, d.buyer, d.event) for d in deliveries] == \
        [("deliver", b, "checkout.session.completed") for b in range(50)]


# --- steering -------------------------------------------------------------------------------

def test_targets_score_race_shapes():
    racing = Scenario(
        ticket_types=(TicketType(capacity=2),),
        buyers=(Buyer(), Buyer(), Buyer(), Buyer(outcome="refunded")),
        waves=((Checkout(0), Checkout(1), Checkout(2)),
               (Delivery(0), Delivery(0, copy=1), Delivery(1), Delivery(3, "charge.refunded"),
                Delivery(0, copy=2, offset_ms=5)),
               (Delivery(3, "payment_intent.succeeded"),),
               (Delivery(3),)),
    )
    racing.validate()
    assert targets(racing) == {
        "copies-of-one-event-in-one-wave": 3.0,
        "requests-in-one-wave": 5.0,
        # three own checkouts together, wanting 3 of the 1 ticket buyer 4 left in set-up
        "checkouts-racing-for-capacity": 4.0,
        # buyer 1's third copy starts 5 ms after the first two
        "redeliveries-in-flight": 1.0,
        # refunded before succeeded and before completed; succeeded before completed
        "events-out-of-order": 3.0,
    }
    assert tuple(targets(racing)) == TARGETS


def test_targets_climb_with_single_choices():
    """A lone checkout scores more as the tickets it wants near what is left."""
    def racing(capacity: int, quantity: int) -> float:
        s = Scenario(ticket_types=(TicketType(capacity=capacity),),
                     buyers=(Buyer(quantity=quantity),), waves=((Checkout(0),),))
        return targets(s)["checkouts-racing-for-capacity"]

    assert racing(1000, 1) < racing(4, 1) < racing(4, 3) < racing(2, 3) == 2.0
    # busy night: three checkouts race (for plenty of tickets), then three completions
    busy = targets(busy_night(3))
    assert busy["requests-in-one-wave"] == 3.0 and busy["copies-of-one-event-in-one-wave"] == 1.0
    assert busy["checkouts-racing-for-capacity"] > 3.0  # three checkouts together


# --- what is refused ------------------------------------------------------------------------

@pytest.mark.parametrize("build, message", [
    (lambda: scenarios(max_buyers=0), "Cannot have max_buyers=0 < 1"),
    (lambda: scenarios(max_copies=-1), "Cannot have max_copies=-1 < 1"),
    (lambda: scenarios(max_waves=1.5), "max_waves=1.5 must be an integer"),
    (lambda: scenarios(max_quantity=True), "max_quantity=True must be an integer"),
    (lambda: scenarios(max_requests=-1), "Cannot have max_requests=-1 < 0"),
    (lambda: scenarios(max_concurrency=0), "Cannot have max_concurrency=0 < 1"),
    (lambda: scenarios(max_offset_ms=20_000), "Cannot have max_offset_ms=20000 > 10000"),
    (lambda: scenarios(max_faults=-2), "Cannot have max_faults=-2 < 0"),
    (lambda: scenarios(max_ticket_types=0), "Cannot have max_ticket_types=0 < 1"),
    (lambda: scenarios(tight_capacity="yes"), "tight_capacity='yes' must be True or False"),
    (lambda: scenarios(outcomes=()), "outcomes=() must name at least one of paid"),
    (lambda: scenarios(outcomes="paid"), "outcomes='paid' must be a collection of names"),
    (lambda: scenarios(outcomes=("paid", "lost")), "names 'lost', which is not one of paid"),
    (lambda: scenarios(signatures=()), "signatures=() must name at least one of valid"),
    (lambda: scenarios(event_types=("charge.captured",)), "names 'charge.captured'"),
    (lambda: scenarios(checkouts=("teleport",)), "names 'teleport'"),
    (lambda: scenarios(fault_kinds=("meteor",)), "names 'meteor'"),
    (lambda: buyers(max_quantity=0), "Cannot have max_quantity=0 < 1"),
    (lambda: buyers(ticket_type_count=0), "Cannot have ticket_type_count=0 < 1"),
    (lambda: ticket_types(max_tight_capacity=0), "Cannot have max_tight_capacity=0 < 1"),
    (lambda: signatures(variants=("valid", "forged")), "names 'forged'"),
    (lambda: faults(kinds=()), "kinds=() must name at least one of 5xx"),
    (lambda: faults(max_nth=0), "Cannot have max_nth=0 < 1"),
    (lambda: faults(max_latency_ms=0), "Cannot have max_latency_ms=0 < 1"),
    (lambda: faults(endpoints=("GET /v1/balance",)), "names 'GET /v1/balance'"),
    (lambda: deliveries((Buyer(),), signatures=()), "signatures=() must name at least one"),
    (lambda: checkouts((Buyer(),), kinds=("x",)), "kinds=('x',) names 'x'"),
    (lambda: schedules((Buyer(),), max_waves=0), "Cannot have max_waves=0 < 1"),
])
def test_invalid_arguments_are_refused_when_built(build, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def _case(**changes):
    data = {"buyers": [{"quantity": 1}], "waves": [[{"kind": "deliver", "buyer": 0}]]}
    data.update(changes)
    return data


@pytest.mark.parametrize("data, message", [
    ([], "not a scenario: expected an object with buyers and waves, got list"),
    ({"waves": []}, "not a scenario: missing field 'buyers'"),
    (_case(colour="red"), "not a scenario: unknown field 'colour'"),
    (_case(buyers=[]), "a scenario needs at least one buyer"),
    (_case(ticket_types=[]), "a scenario needs at least one ticket type"),
    (_case(waves={}), "waves must be a list, not dict"),
    (_case(waves=[[{"kind": "teleport"}]]), r"waves\[0\]\[0\]: unknown step kind 'teleport'"),
    (_case(waves=[[{"kind": "deliver"}]]), r"waves\[0\]\[0\]: missing field 'buyer'"),
    (_case(buyers=[{"quantity": 1, "colour": "red"}]), r"buyers\[0\]: unknown field 'colour'"),
    (_case(buyers=[{"quantity": "1"}]), "buyer 1: quantity must be a whole number, not '1'"),
    (_case(buyers=[{"quantity": 0}]), "buyer 1: quantity is 0; it must be >= 1"),
    (_case(buyers=[{"ticket_type": 1}]), "buyer 1 names ticket type 2, but the event has 1"),
    (_case(buyers=[{"outcome": "lost"}]), "buyer 1: unknown outcome 'lost'"),
    (_case(ticket_types=[{"price": 0}]), "ticket type 1: price is 0; it must be >= 1"),
    (_case(waves=[[]]), "wave 1 is empty"),
    (_case(waves=[[{"buyer": 3}]]), "wave 1, step 1 names buyer 4, but the scenario has 1"),
    (_case(buyers=[{"outcome": "expired"}]),
     "buyer 1's story \\(expired\\) emits no checkout.session.completed; "
     "it emits checkout.session.expired"),
    (_case(waves=[[{"buyer": 0, "event": "charge.captured"}]]), "unknown event type"),
    (_case(waves=[[{"buyer": 0, "signature": "forged"}]]), "unknown signature variant 'forged'"),
    (_case(waves=[[{"buyer": 0, "copy": 1}]]), "it is the 1st copy in schedule order, so copy must be 0"),
    (_case(waves=[[{"buyer": 0, "offset_ms": 5}, {"buyer": 0, "copy": 1}]]),
     "offset_ms 0 is smaller than the step before it \\(5\\); list a wave in firing order"),
    (_case(waves=[[{"buyer": 0, "offset_ms": -1}]]), "offset_ms is -1; it must be >= 0"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0}, {"buyer": 0}]]),
     "buyer 1 checks out in wave 1, so its events can only be delivered in a later wave"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0}], [{"kind": "checkout", "buyer": 0}]]),
     "buyer 1's own checkout \\(attempt 0\\) appears twice"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0, "tamper": "price"}]]),
     "the buyer's own checkout \\(attempt 0\\) uses its own key and is not tampered"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0, "attempt": 2}]]),
     "it is the buyer's 1st extra attempt in schedule order, so attempt must be 1"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0, "attempt": 1}],
                  [{"kind": "checkout", "buyer": 0}]]),
     "buyer 1's own checkout comes in wave 2; repeat it there or later"),
    (_case(waves=[[{"kind": "checkout", "buyer": 0, "attempt": 1, "key": "other"}]]),
     "unknown key 'other'"),
    (_case(faults=[{"kind": "latency"}]), "fault 1: latency_ms is 0; give it \\(> 0\\) for kind"),
    (_case(faults=[{"kind": "5xx", "latency_ms": 10}]), "fault 1: latency_ms is 10"),
    (_case(faults=[{"kind": "meteor"}]), "fault 1: unknown fault kind 'meteor'"),
    (_case(faults=[{"endpoint": "GET /v1/balance"}]), "fault 1: unknown endpoint"),
    (_case(faults=[{}, {"kind": "429"}]), "fault 2: the 1st call to POST /v1/checkout/sessions "
                                          "already has a fault; one fault per call"),
    (_case(faults=[{"times": 3}, {"kind": "429", "nth": 3}]),
     "fault 2: the 3rd call to POST /v1/checkout/sessions already has a fault"),
    (_case(faults=[{"times": 0}]), "fault 1: times is 0; it must be >= 1"),
])
def test_bad_scenario_data_names_the_problem(data, message):
    with pytest.raises(ValueError, match=message):
        Scenario.from_data(data)


def test_walking_skeleton_case_files_still_load():
    """Fields added since the skeleton are optional: old case files keep replaying."""
    old = {"buyers": [{"quantity": 1}],
           "waves": [[{"kind": "deliver", "buyer": 0},
                      {"kind": "deliver", "buyer": 0, "copy": 1}]]}
    assert Scenario.from_data(old) == Scenario(buyers=(Buyer(),),
                                               waves=((Delivery(0), Delivery(0, copy=1)),))


# --- the public face ------------------------------------------------------------------------

def test_all_matches_the_public_names():
    public = {name for name, value in vars(strategies).items()
              if not name.startswith("_") and not isinstance(value, type(strategies))}
    assert set(strategies.__all__) == public
    from strategies._internal.validation import PUBLIC_STRATEGIES
    assert PUBLIC_STRATEGIES <= set(strategies.__all__)
    assert {"scenarios", "buyers", "deliveries", "checkouts", "signatures", "faults",
            "schedules", "ticket_types"} == PUBLIC_STRATEGIES


def test_strategies_are_pure_data():
    """No trio, httpx, asyncpg or stripe behind ``import strategies`` (Hypothesis'
    plugins are switched off: trio registers one that seeds its scheduler)."""
    code = ("import sys, strategies; "
            "print(sorted(m for m in ('trio', 'httpx', 'asyncpg', 'stripe') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "HYPOTHESIS_NO_PLUGINS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(swarm=True))
def test_swarm_scenarios_are_valid(scenario: Scenario):
    scenario.validate()


def test_swarm_must_be_a_bool():
    with pytest.raises(InvalidArgument, match="swarm"):
        scenarios(swarm="yes").validate()  # type: ignore[arg-type]


def swarm_steps(kinds: object) -> list[object]:
    """The schedule steps of 150 stories drawn (seed 1) with the swarm ``kinds``."""
    from strategies._internal.scenarios import _story_of
    from strategies._internal.schedules import Bounds

    seen: list[object] = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_story_of(Bounds(), 2, 1, OUTCOMES[:1], kinds))
    def story(drawn: tuple[Buyer, list[tuple[object, int]]]) -> None:
        seen.extend(step for step, _ in drawn[1])

    with_seed(1)(story)()
    return seen


def test_a_swarm_draws_signatures_and_checkout_kinds_from_those_on():
    """Only stale signatures and tampered prices on: every delivery not validly signed
    is stale (not folded by its name onto another variant), every schedule checkout is
    a tampered price, most with a fresh key; whole stories keep the stale deliveries
    drawn beside them."""
    from strategies._internal.swarm import Swarm

    for whole in (False, True):
        steps = swarm_steps(Swarm(outcomes=(), checkouts=("tampered-price",),
                                  signatures=("stale",), whole_stories=whole))
        signed = {s.signature for s in steps if isinstance(s, Delivery)}
        assert signed == {"valid", "stale"}, (whole, signed)
        keys = [s.key for s in steps if isinstance(s, Checkout) and s.attempt]
        assert {s.tamper for s in steps if isinstance(s, Checkout) and s.attempt} == {"price"}
        assert keys.count("fresh") > keys.count("same") > 0


def test_buyers_rushing_for_a_tight_capacity_each_fit_it():
    """Tight capacity and a rush on: no rushing buyer wants more than its ticket type
    holds, so each could have the last tickets alone (the race an oversell needs)."""
    from strategies._internal.swarm import Swarm

    types = (TicketType(capacity=1), TicketType(capacity=3))
    both = Swarm(outcomes=(), checkouts=(), signatures=(), tight_capacity=True, rush=True)
    assert both.fitted(Buyer(quantity=4, ticket_type=0), types).quantity == 1
    assert both.fitted(Buyer(quantity=4, ticket_type=1), types).quantity == 3
    assert both.fitted(Buyer(quantity=2, ticket_type=1), types).quantity == 2
    no_rush = Swarm(outcomes=(), checkouts=(), signatures=(), tight_capacity=True, rush=False)
    assert no_rush.fitted(Buyer(quantity=4), types).quantity == 4   # turned away, no race
