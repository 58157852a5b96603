"""The shop under drawn scenarios: payment-chaos' Hypothesis strategies in a plain test.

``strategies.scenarios()`` draws buyers' stories (paid, refunded, expired) and a schedule
of webhook deliveries (copies, order, forged signatures); the plugin's ``chaos_target``
plays each one against the shop exactly as the chaos search plays an example (its own
event and ticket type in the shop's database, the buyers' orders, Stripe's events
delivered, the rows read back) and returns what it observed and which invariants broke.
Hypothesis shrinks a failure to the fewest buyers and copies.
"""

from __future__ import annotations

from hypothesis import Phase, given, note, settings

from chaos.observation import PaymentOutcome
from strategies import Scenario, scenarios

#: The events this shop is subscribed to, and the stories that produce them.
EVENTS = ("checkout.session.completed", "charge.refunded")
STORIES = ("paid", "refunded", "expired")


# derandomized: the same scenarios every run (CI); no "explain" phase: it traces every line
# of the shop and its clients on each re-run, which costs more than the search itself
@settings(max_examples=30, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(scenarios(max_buyers=2, outcomes=STORIES, event_types=EVENTS, max_faults=0,
                 max_requests=6))
def test_every_drawn_story_keeps_the_shops_promises(chaos_target, scenario: Scenario):
    note("\n".join(scenario.render()))      # the failing scenario in words, with the failure
    result = chaos_target.execute(scenario)

    assert [v.message for v in result.violations] == []
    # what was observed: the buyers' sessions as Stripe holds them, the shop's rows for them
    for session in result.observation.sessions:
        tickets = sum(r["tickets"] for r in result.observation.tickets_per_payment
                      if r["checkout_session"] == session.id)
        if session.outcome in (PaymentOutcome.UNPAID, PaymentOutcome.EXPIRED):
            assert tickets == 0, f"{session.id} is {session.outcome} but holds {tickets}"
