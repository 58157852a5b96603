"""The pretix example's config (``examples/pretix/chaos.toml``) as the tool reads it,
without pretix: its journey, its subscription and the promises pretix makes, so the
invariants ``nox -s pretix`` checks are the ones that apply to pretix. The run itself
needs pretix from PyPI and is ``nox -s pretix``, not part of the test run.
"""

from __future__ import annotations

from pathlib import Path

from chaos.config import load
from chaos.invariants import INVARIANTS
from chaos.promises import checked
from chaos.target import render_body

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "pretix" / "chaos.toml"
ENV = {"PRETIX_CHAOS_DATABASE_URL": "postgresql://127.0.0.1:5432/pretix_chaos_test"}


def test_pretix_is_held_to_its_own_promises_and_to_every_other_invariant():
    target = load(CONFIG, environ=ENV).target
    assert (target.promises.signatures, target.promises.confirms, target.promises.refunds) == \
        ("refetch", ("charge.succeeded",), "flag")
    assert set(INVARIANTS) - checked(target.promises) == {
        "refund-voids-tickets",              # pretix flags a Stripe refund for an admin
        "one-session-per-idempotency-key"}   # the buyer pays at Stripe: no checkout door
    # the evidence no-lost-payment asks of a shop that flags refunds: pretix's external
    # refunds awaiting an admin, per order
    assert "as flagged" in target.tickets_per_payment_sql
    assert [i.name for i in target.invariants] == [
        "one-confirmed-payment-per-order", "one-external-refund-per-stripe-refund",
        "paid-orders-are-paid-in-full"]


def test_the_buyer_pays_at_stripe_under_the_payment_intent_pretix_stored():
    target = load(CONFIG, environ=ENV).target
    assert target.journey == "stripe-session"
    row = {"stripe_intent": "pi_pretix_7", "pretix_event": 1, "order_id": 7,
           "order_code": "CH7", "price_id": "price_x", "quantity": 2, "event_id": "chaos-1",
           "email": "buyer1@example.test"}
    session = render_body(target.session_template, row)
    assert session["payment_intent_id"] == "pi_pretix_7"
    assert session["payment_intent_metadata"] == {"event": 1, "order": 7, "code": "CH7"}
    assert "turned_away" in target.fixture_buyer_sql   # sold out: pretix's checkout refuses


def test_the_webhook_is_pretix_s_per_event_route_subscribed_to_the_charge():
    target = load(CONFIG, environ=ENV).target
    assert render_body(target.webhook_path, {"organizer": "chaos", "event_slug": "tickets"}) \
        == "/chaos/tickets/stripe/webhook/"
    assert target.subscribed("charge.succeeded") and target.subscribed("charge.refunded")
    assert not target.subscribed("checkout.session.completed")  # pretix ignores it
