"""A buyer the shop's own checkout turns away before Stripe (sold out, as pretix's
checkout checks its quota before the redirect) never opens a session, on the
Stripe journeys: the buyer fixture's row says so with ``turned_away``. Pure: the
plan only, no sockets.
"""

from __future__ import annotations

import json

from chaos.plan import FixtureIds, plan
from strategies import Buyer, Scenario
from tests.test_journeys import EVENT, LISTING, STRIPE, target

TEMPLATE = {"line_items": [{"price": "{{price_id}}", "quantity": "{{quantity}}"}],
            "payment_intent_id": "{{stripe_intent}}"}


def first_checkouts(*rows: dict[str, object]) -> list[object]:
    """What each buyer's opening checkout would send (None: not sent)."""
    ids = FixtureIds(event=17, ticket_types=(42,), listings=(LISTING,), buyers=rows)
    scenario = Scenario(buyers=tuple(Buyer(quantity=1) for _ in rows), waves=())
    the_plan = plan(scenario, target=target(journey="stripe-session", session_template=TEMPLATE),
                    stripe_url=STRIPE, event_id=EVENT, ids=ids)
    checkouts = [call for phase in the_plan.phases for call in phase.calls
                 if call.kind == "checkout"]
    return [call.build() for call in checkouts]


def test_a_turned_away_buyer_opens_no_session_and_the_others_do():
    sent = first_checkouts({"stripe_intent": "pi_pretix_1", "turned_away": False},
                           {"stripe_intent": None, "turned_away": True})
    assert sent[1] is None
    assert sent[0] is not None
    assert json.loads(sent[0].content)["payment_intent_id"] == "pi_pretix_1"


def test_without_the_column_every_buyer_begins_at_stripe():
    sent = first_checkouts({"stripe_intent": "pi_a"}, {"stripe_intent": "pi_b"})
    assert [json.loads(r.content)["payment_intent_id"] for r in sent] == ["pi_a", "pi_b"]
