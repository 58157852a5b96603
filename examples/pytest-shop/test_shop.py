"""The shop against payment-chaos' fake Stripe: plain integration tests, no chaos run.

Each test orders through the shop (which creates its Checkout Session with the real
stripe-python client), plays the buyer and Stripe with ``fake_stripe``, delivers the
events Stripe emitted to the shop's webhook, signed, and reads the shop's rows.
"""

from __future__ import annotations

from typing import Any

import httpx


def order(shop: Any, quantity: int = 2) -> dict[str, Any]:
    answer = httpx.post(f"{shop.url}/orders", json={"quantity": quantity}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def tickets(shop: Any, order_id: int) -> list[str]:
    return [r["status"] for r in shop.db.rows(
        "select status from tickets where order_id = $1 order by id", order_id)]


def test_a_paid_order_gets_its_tickets(shop, fake_stripe):
    placed = order(shop, quantity=2)
    paid = fake_stripe.pay(placed["session"])
    answer = fake_stripe.deliver(paid.event("checkout.session.completed"), f"{shop.url}/webhook")

    assert answer.status_code == 200
    assert tickets(shop, placed["order"]) == ["valid", "valid"]
    assert [c["path"] for c in fake_stripe.calls()] == ["/v1/checkout/sessions"]


def test_a_redelivered_event_issues_no_second_ticket_set(shop, fake_stripe):
    placed = order(shop, quantity=2)
    completed = fake_stripe.pay(placed["session"]).event("checkout.session.completed")
    for _ in range(3):                      # Stripe retries: the same event, three times
        assert fake_stripe.deliver(completed, f"{shop.url}/webhook").status_code == 200

    assert tickets(shop, placed["order"]) == ["valid", "valid"]


def test_a_forged_delivery_is_refused_and_issues_nothing(shop, fake_stripe):
    placed = order(shop, quantity=1)
    completed = fake_stripe.pay(placed["session"]).event("checkout.session.completed")
    for variant in ("tampered", "stale", "wrong-secret", "missing"):
        assert fake_stripe.deliver(completed, f"{shop.url}/webhook",
                                   variant=variant).status_code == 400, variant

    assert tickets(shop, placed["order"]) == []


def test_a_refund_voids_the_tickets(shop, fake_stripe):
    placed = order(shop, quantity=2)
    fake_stripe.pay(placed["session"])
    fake_stripe.refund(placed["session"])
    responses = fake_stripe.deliver_all(f"{shop.url}/webhook")   # every event, in order

    assert [r.status_code for r in responses] == [200] * len(responses)
    assert tickets(shop, placed["order"]) == ["void", "void"]


def test_stripe_failing_the_checkout_is_a_502_and_no_order(shop, fake_stripe):
    fake_stripe.arm("/v1/checkout/sessions", method="POST", status=503, nth=1)
    before = shop.db.rows("select count(*) as n from orders")[0]["n"]
    answer = httpx.post(f"{shop.url}/orders", json={"quantity": 1}, timeout=30)

    assert answer.status_code == 502
    assert shop.db.rows("select count(*) as n from orders")[0]["n"] == before
    assert [c["outcome"] for c in fake_stripe.calls()] == ["fault"]
