"""Events as Stripe sends them, delivered by a run: a schedule may name any
event of a buyer's story (``charge.succeeded`` for a shop that confirms on
it, ``payment_intent.created``, ...), and the webhook receives exactly the
event the fake Stripe emitted, validly signed.
"""

from __future__ import annotations

import json

import httpx
import pytest

from strategies import Buyer, Delivery, Scenario, story_events


@pytest.mark.e2e
def test_a_run_delivers_every_event_of_a_paid_and_refunded_story(server_url: str):
    from chaos.run import reference_run

    events = story_events("refunded")
    scenario = Scenario(buyers=(Buyer(outcome="refunded"),),
                        waves=(tuple(Delivery(buyer=0, event=e) for e in events),
                               (Delivery(buyer=0, event="charge.succeeded", copy=1),)))
    scenario.validate()
    with reference_run(database_url=server_url, concurrency=8) as runner:
        result = runner.run_example(scenario)
        delivered = sorted((op for op in result.history.ops if op.kind == "deliver"),
                           key=lambda op: op.step or 0)
        with httpx.Client(base_url=runner.stripe_url, trust_env=False, timeout=30,
                          headers={"Authorization": "Bearer sk_test_event_delivery_0001"}) as http:
            stored = {op.ref.event_id: http.get(f"/v1/events/{op.ref.event_id}").json()
                      for op in delivered}
    assert result.violations == []
    assert [op.ref.event for op in delivered] == [*events, "charge.succeeded"]
    assert all(op.status == 200 and op.sent for op in delivered), [op.body for op in delivered]
    for op in delivered:
        event = stored[op.ref.event_id]
        assert event["type"] == op.ref.event
        shape = {"charge.dispute.created": "dispute"}.get(event["type"],
                                                          event["type"].rsplit(".", 1)[0])
        assert event["data"]["object"]["object"] == shape  # shaped like the object
    charge = stored[delivered[-1].ref.event_id]["data"]["object"]
    assert (charge["status"], charge["paid"]) == ("succeeded", True)
    # the copy is the same event, as Stripe's retries are
    assert delivered[-1].ref.event_id == next(op.ref.event_id for op in delivered
                                                 if op.ref.event == "charge.succeeded")
    ignored = [json.loads(op.body).get("ignored") for op in delivered
               if op.ref.event in ("charge.succeeded", "payment_intent.created")]
    assert ignored == ["charge.succeeded", "payment_intent.created", "charge.succeeded"]
