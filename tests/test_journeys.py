"""Journeys, as the client plans them (pure: no sockets).

A scenario, a target described the way a config describes it, and the
requests the plan would send: where a buyer's payment begins, which
deliveries the endpoint's subscription lets through, and the paths the
templates give.
"""

from __future__ import annotations

import json

import httpx

from chaos.plan import FixtureIds, Listing, plan, product_id
from chaos.target import Target
from strategies import Buyer, Checkout, Delivery, Scenario

STRIPE = "http://127.0.0.1:12111"
EVENT = "chaos-abc123-000001"
LISTING = Listing(product_id=product_id(EVENT, 0), price_id="price_test_1",
                  payment_link_id="plink_test_1", payment_link_url="https://buy.stripe.test/x")
IDS = FixtureIds(event=17, ticket_types=(42,), listings=(LISTING,))


def target(**fields: object) -> Target:
    return Target(base_url="http://127.0.0.1:9000", webhook_secret="whsec_test", **fields)


def scenario(*waves: tuple[object, ...], quantity: int = 2) -> Scenario:
    return Scenario(buyers=(Buyer(quantity=quantity),), waves=tuple(waves))


def completed_and_paid(the_plan) -> None:
    """What the fake Stripe's pay call would have bound: the buyer's events."""
    binding = the_plan.bindings[0]
    binding.session_id = "cs_test_1"
    for kind in ("checkout.session.completed", "payment_intent.succeeded"):
        binding.events[kind] = {"id": f"evt_{kind}", "type": kind,
                                "data": {"object": {"id": "cs_test_1", "payment_status": "paid"}}}


def test_the_product_id_is_chosen_before_anything_is_bought():
    assert product_id(EVENT, 0) == "prod_chaos_abc123_000001_tt1"
    assert product_id(EVENT, 1) != product_id(EVENT, 0)


def test_a_payment_link_buyer_begins_at_the_link_and_types_their_details_at_stripe():
    the_plan = plan(scenario(), target=target(journey="payment-link"), stripe_url=STRIPE,
                    event_id=EVENT, ids=IDS)
    begin, pay = the_plan.phases[0].calls[0], the_plan.phases[1].calls[0]
    assert (begin.kind, begin.door) == ("checkout", "stripe")
    request = begin.build()
    assert request is not None
    assert str(request.url) == f"{STRIPE}/_chaos/payment_links/plink_test_1/checkout"
    assert json.loads(request.content) == {"quantity": 2}
    begin.on_answer(httpx.Response(200, json={"id": "cs_test_9", "url": "https://x"}))
    assert the_plan.bindings[0].session_id == "cs_test_9"
    paying = json.loads(pay.build().content)
    assert paying["customer_details"]["email"].startswith("buyer1@")
    assert paying["customer_details"]["name"] == "Buyer 1"


def test_a_browser_checkout_fills_the_session_template_with_the_listing_and_fixture_ids():
    template = {"line_items": [{"price": "{{price_id}}", "quantity": "{{quantity}}"}],
                "client_reference_id": "{{cart}}", "metadata": {"event_id": "{{event_id}}"}}
    ids = FixtureIds(event=17, ticket_types=(42,), listings=(LISTING,), buyers=({"cart": "c-9"},))
    the_plan = plan(scenario(), target=target(journey="stripe-session",
                                              session_template=template),
                    stripe_url=STRIPE, event_id=EVENT, ids=ids)
    request = the_plan.phases[0].calls[0].build()
    assert str(request.url) == f"{STRIPE}/_chaos/checkout/sessions"
    assert json.loads(request.content) == {
        "line_items": [{"price": "price_test_1", "quantity": 2}],
        "client_reference_id": "c-9", "metadata": {"event_id": 17}}


def test_retries_a_browser_cannot_make_are_not_sent_and_a_fresh_one_opens_a_session():
    waves = ((Checkout(buyer=0), Checkout(buyer=0, attempt=1, key="same"),
              Checkout(buyer=0, attempt=2, key="fresh"),
              Checkout(buyer=0, attempt=3, key="fresh", tamper="price")),)
    the_plan = plan(scenario(*waves), target=target(journey="payment-link"), stripe_url=STRIPE,
                    event_id=EVENT, ids=IDS)
    [wave] = [p for p in the_plan.phases if p.wave is not None]
    sent = [call.build() is not None for call in wave.calls]
    assert sent == [True, False, True, False]


def test_only_subscribed_event_types_are_delivered_to_the_templated_path():
    waves = ((Delivery(buyer=0), Delivery(buyer=0, event="payment_intent.succeeded")),)
    subscribed = target(journey="payment-link", webhook_path="/{{event_id}}/stripe/webhook/",
                        webhook_events=("checkout.session.completed",))
    the_plan = plan(scenario(*waves), target=subscribed, stripe_url=STRIPE, event_id=EVENT,
                    ids=IDS)
    completed_and_paid(the_plan)
    [wave] = [p for p in the_plan.phases if p.wave is not None]
    completed, intent = (call.build() for call in wave.calls)
    assert completed is not None and intent is None
    assert str(completed.url) == "http://127.0.0.1:9000/17/stripe/webhook/"
    # without a subscription every type goes out, as before
    everything = plan(scenario(*waves), target=target(), stripe_url=STRIPE, event_id=EVENT,
                      ids=IDS)
    completed_and_paid(everything)
    [wave] = [p for p in everything.phases if p.wave is not None]
    assert all(call.build() is not None for call in wave.calls)


def test_the_endpoint_journey_is_unchanged():
    the_plan = plan(scenario(), target=target(), stripe_url=STRIPE, event_id=EVENT,
                    ids=FixtureIds(event=EVENT, ticket_types=(f"{EVENT}-tt1",)))
    begin = the_plan.phases[0].calls[0]
    assert (begin.kind, begin.door) == ("checkout", "target")
    assert str(begin.build().url) == "http://127.0.0.1:9000/functions/v1/create-checkout-session"
    begin.on_answer(httpx.Response(200, json={"sessionId": "cs_test_2", "url": "https://x"}))
    assert json.loads(the_plan.phases[1].calls[0].build().content) == {"outcome": "paid"}


def test_a_payment_link_the_buyer_fixture_names_is_the_one_bought_through():
    ids = FixtureIds(event=17, ticket_types=(42,), listings=(LISTING,),
                     buyers=({"payment_link_id": "plink_shop_own"},))
    the_plan = plan(scenario(), target=target(journey="payment-link"), stripe_url=STRIPE,
                    event_id=EVENT, ids=ids)
    request = the_plan.phases[0].calls[0].build()
    assert str(request.url) == f"{STRIPE}/_chaos/payment_links/plink_shop_own/checkout"


def test_a_subscription_decides_which_events_the_schedule_draws():
    from chaos.plan import drawn_event_types
    from strategies import DEFAULT_EVENT_TYPES, scenarios

    assert drawn_event_types(None) == DEFAULT_EVENT_TYPES
    assert drawn_event_types(Target(base_url="", webhook_secret="")) == DEFAULT_EVENT_TYPES
    confirms_on_charge = Target(base_url="", webhook_secret="",
                                webhook_events=("charge.succeeded", "charge.refunded"))
    assert set(drawn_event_types(confirms_on_charge)) == {"charge.succeeded", "charge.refunded"}
    # and the search can draw them: a strategy over them builds and yields those types only
    from hypothesis import given, settings

    seen: set[str] = set()

    @settings(max_examples=60, database=None)
    @given(scenarios(event_types=drawn_event_types(confirms_on_charge)))
    def draw(scenario):
        seen.update(step.event for _, step in scenario.deliveries())

    draw()
    assert seen and seen <= {"charge.succeeded", "charge.refunded"}
    assert "charge.succeeded" in seen
