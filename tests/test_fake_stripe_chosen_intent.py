"""A PaymentIntent id chosen before the buyer pays (``payment_intent_id`` on the
control side's ``/_chaos/checkout/sessions``), for shops that store the id in
their own rows before the redirect to Stripe, as pretix does (its webhook finds
the order only by the PaymentIntent or charge id it stored). The shop then reads
the charge back the way pretix's webhook does.
"""

from __future__ import annotations

import pytest

from tests import fake_stripe_helpers
from tests.fake_stripe_helpers import Fake

pytestmark = pytest.mark.e2e  # one fake Stripe process for the module

fake = fake_stripe_helpers.fake
stripe_server = fake_stripe_helpers.stripe_server


def test_the_paid_session_gets_the_chosen_payment_intent_and_its_charge_names_it(fake: Fake):
    session = fake.control.checkout(
        4200, payment_intent_id="pi_pretix_order_17",
        payment_intent_metadata={"event": "3", "order": "17", "code": "ABC12"})
    paid = fake.control.pay(session["id"])
    assert paid["payment_intent"]["id"] == "pi_pretix_order_17"
    succeeded = next(e for e in paid["events"] if e["type"] == "charge.succeeded")
    charge = succeeded["data"]["object"]
    assert charge["payment_intent"] == "pi_pretix_order_17"

    # pretix's charge_webhook, with the current stripe-python
    got = fake.client().v1.charges.retrieve(charge["id"], params={
        "expand": ["dispute", "refunds", "payment_intent", "payment_intent.latest_charge"]})
    assert got.payment_intent.id == "pi_pretix_order_17"
    assert got.payment_intent.latest_charge.id == charge["id"]
    assert got.metadata.to_dict() == {"event": "3", "order": "17", "code": "ABC12"}
    assert (got.status, got.dispute, got.refunds.total_count) == ("succeeded", None, 0)


def test_two_open_sessions_may_name_one_id_but_only_one_is_paid_with_it(fake: Fake):
    first = fake.control.checkout(1000, payment_intent_id="pi_shared_by_two")
    second = fake.control.checkout(1000, payment_intent_id="pi_shared_by_two")
    assert fake.control.pay(second["id"])["payment_intent"]["id"] == "pi_shared_by_two"
    refused = fake.control.http.post(f"/_chaos/checkout/sessions/{first['id']}/pay", json={})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "resource_already_exists"


def test_a_session_naming_a_paid_intent_opens_but_cannot_be_paid(fake: Fake):
    fake.control.pay(fake.control.checkout(1000, payment_intent_id="pi_paid_already")["id"])
    again = fake.control.checkout(1000, payment_intent_id="pi_paid_already")  # a retry
    refused = fake.control.http.post(f"/_chaos/checkout/sessions/{again['id']}/pay", json={})
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "payment_intent_id")


@pytest.mark.parametrize(("chosen", "code"), [
    ("ch_not_an_intent", "parameter_invalid"),
    ("pi_with space", "parameter_invalid"),
])
def test_a_malformed_chosen_id_is_refused(fake: Fake, chosen: str, code: str):
    refused = fake.control.http.post("/_chaos/checkout/sessions",
                                     json={"amount_total": 1000, "payment_intent_id": chosen})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == (code, "payment_intent_id")
    assert chosen in error["message"]


def test_without_a_chosen_id_the_fake_mints_one(fake: Fake):
    paid = fake.control.pay(fake.control.checkout(1000)["id"])
    assert paid["payment_intent"]["id"].startswith("pi_test_")
