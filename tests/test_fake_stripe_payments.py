"""PaymentIntents, Charges and ``expand[]`` on the fake Stripe, as integrations
that re-fetch everything use them (pretix: PaymentIntents confirmed by the
buyer, then ``GET /v1/charges/{id}?expand[]=dispute&expand[]=refunds&...``).

Driven by the project's stripe-python; the same calls from stripe-python 7.x
and stripe-node are in ``tests/test_fake_stripe_clients.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from chaos.fake_stripe.expandable import EXPANDABLE
from tests import fake_stripe_helpers
from tests.fake_stripe_helpers import KEY, Fake

fake = fake_stripe_helpers.fake  # the fixtures, for this module
stripe_server = fake_stripe_helpers.stripe_server
pytestmark = pytest.mark.e2e  # every test talks to a fake Stripe server process

PRETIX_CHARGE = ["dispute", "refunds", "payment_intent", "payment_intent.latest_charge"]


def v1(fake: Fake, method: str, path: str, **params: Any) -> httpx.Response:
    """A raw call with stripe's form encoding (for what the client libraries hide)."""
    with httpx.Client(base_url=fake.url, timeout=30, trust_env=False) as http:
        return http.request(method, path, params=params if method == "GET" else None,
                            data=params if method != "GET" else None,
                            headers={"Authorization": f"Bearer {KEY}"})


def paid_intent(fake: Fake, **params: Any) -> Any:
    sc = fake.client()
    intent = sc.v1.payment_intents.create(params={"amount": 4200, "currency": "eur",
                                                  "metadata": {"order": "A1"}, **params})
    return sc.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})


# -- PaymentIntents --------------------------------------------------------------------------------


def test_a_payment_intent_goes_from_created_to_succeeded_with_a_charge(fake: Fake):
    sc = fake.client()
    intent = sc.v1.payment_intents.create(
        params={"amount": 4200, "currency": "EUR", "metadata": {"order": "A1"}},
        options={"idempotency_key": "pi-create-1"})
    assert (intent.status, intent.amount, intent.currency, intent.latest_charge) == \
        ("requires_payment_method", 4200, "eur", None)
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    replay = sc.v1.payment_intents.create(
        params={"amount": 4200, "currency": "EUR", "metadata": {"order": "A1"}},
        options={"idempotency_key": "pi-create-1"})
    assert replay.id == intent.id  # a retried create makes no second PaymentIntent
    updated = sc.v1.payment_intents.update(intent.id, params={"amount": 5000,
                                                              "metadata": {"seat": "12"}})
    assert (updated.amount, updated.metadata.to_dict()) == (5000, {"order": "A1", "seat": "12"})

    confirmed = sc.v1.payment_intents.confirm(intent.id, params={
        "payment_method": "pm_card_visa", "expand": ["latest_charge"]})
    charge = confirmed.latest_charge
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 5000)
    assert (charge.object, charge.status, charge.paid, charge.captured, charge.amount) == \
        ("charge", "succeeded", True, True, 5000)
    assert charge.payment_intent == intent.id and charge.metadata.to_dict()["seat"] == "12"
    assert charge.payment_method_details.type == "card"
    assert charge.payment_method_details.card.last4 == "4242"
    assert charge.balance_transaction.startswith("txn_") and charge.source is None
    assert (charge.dispute, charge.disputed, charge.refunded, charge.amount_refunded) == \
        (None, False, False, 0)
    assert sc.v1.balance_transactions.retrieve(charge.balance_transaction).source == charge.id
    # pm_card_visa became a PaymentMethod of its own, as on Stripe
    assert confirmed.payment_method.startswith("pm_test_")
    assert confirmed.payment_method == charge.payment_method != "pm_card_visa"
    method = sc.v1.payment_methods.retrieve(charge.payment_method)
    assert (method.type, method.card.last4, method.card.brand) == ("card", "4242", "visa")
    with_method = sc.v1.payment_intents.retrieve(intent.id, params={"expand": ["payment_method"]})
    assert with_method.payment_method.id == method.id

    events = sc.v1.events.list(params={"type": "payment_intent.*", "limit": 100}).data
    mine = [e for e in events if e.data.object.id == intent.id]
    assert [e.type for e in mine][::-1] == ["payment_intent.created", "payment_intent.succeeded"]
    assert mine[-1].request.idempotency_key == "pi-create-1"  # the call that caused it
    [charged] = [e for e in sc.v1.events.list(params={"type": "charge.succeeded"}).data
                 if e.data.object.id == charge.id]
    assert charged.data.object.status == "succeeded"


def test_confirming_twice_or_cancelling_a_paid_intent_is_refused_as_on_stripe(fake: Fake):
    intent = paid_intent(fake)
    sc = fake.client()
    with pytest.raises(stripe.InvalidRequestError) as confirm:
        sc.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert confirm.value.code == "payment_intent_unexpected_state"
    assert "status of succeeded" in str(confirm.value)
    with pytest.raises(stripe.InvalidRequestError) as cancel:
        sc.v1.payment_intents.cancel(intent.id)
    assert cancel.value.code == "payment_intent_unexpected_state"
    assert [c.id for c in sc.v1.charges.list(params={"payment_intent": intent.id}).data] == \
        [intent.latest_charge]  # one charge, not three


def test_a_declined_card_fails_the_charge_and_keeps_the_intent_payable(fake: Fake):
    sc = fake.client()
    intent = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.CardError) as declined:
        sc.v1.payment_intents.confirm(intent.id,
                                      params={"payment_method": "pm_card_chargeDeclined"})
    assert (declined.value.code, declined.value.http_status) == ("card_declined", 402)
    assert declined.value.error.decline_code == "generic_decline"
    now = sc.v1.payment_intents.retrieve(intent.id, params={"expand": ["latest_charge"]})
    assert now.status == "requires_payment_method"
    assert now.last_payment_error.code == "card_declined"
    assert (now.latest_charge.status, now.latest_charge.failure_code) == ("failed", "card_declined")
    paid = sc.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded" and paid.latest_charge != now.latest_charge.id


def test_cancel_and_a_missing_payment_method_answer_as_stripe(fake: Fake):
    sc = fake.client()
    intent = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sc.v1.payment_intents.confirm(intent.id)
    assert missing.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        sc.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_made_up"})
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "payment_method")
    canceled = sc.v1.payment_intents.cancel(intent.id,
                                            params={"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert canceled.canceled_at is not None
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.update(intent.id, params={"amount": 1})
    with pytest.raises(stripe.InvalidRequestError) as bad:
        sc.v1.payment_intents.create(params={"currency": "usd"})
    assert bad.value.param == "amount"
    before = len(fake.control.objects("payment_intent"))
    with pytest.raises(stripe.InvalidRequestError) as unconfirmable:
        sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd", "confirm": True})
    assert unconfirmable.value.param == "payment_method"
    assert len(fake.control.objects("payment_intent")) == before  # refused before creating
    made = sc.v1.payment_intents.create(params={  # as pretix creates its PaymentIntents
        "amount": 500, "currency": "usd", "confirm": True, "payment_method": "pm_card_mastercard",
        "payment_method_types": ["card"], "confirmation_method": "manual",
        "return_url": "http://127.0.0.1/sca", "expand": ["latest_charge"]})
    assert (made.status, made.confirmation_method, made.latest_charge.status) == \
        ("succeeded", "manual", "succeeded")
    assert made.latest_charge.payment_method_details.card.brand == "mastercard"


def test_the_control_side_confirms_as_the_buyer_and_reports_a_decline(fake: Fake):
    intent = fake.client().v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    declined = fake.control.post(f"/_chaos/payment_intents/{intent.id}/confirm",
                                 {"payment_method": "pm_card_chargeDeclined"})
    assert [e["type"] for e in declined["events"]] == ["charge.failed",
                                                       "payment_intent.payment_failed"]
    assert declined["error"]["code"] == "card_declined"
    paid = fake.control.post(f"/_chaos/payment_intents/{intent.id}/confirm")
    assert [e["type"] for e in paid["events"]] == ["charge.succeeded", "payment_intent.succeeded"]
    assert (paid["error"], paid["payment_intent"]["status"], paid["charge"]["status"]) == \
        (None, "succeeded", "succeeded")


def test_the_control_side_creates_and_cancels_as_an_elements_shop_would(fake: Fake):
    made = fake.control.post("/_chaos/payment_intents", {
        "amount": 4200, "currency": "eur", "metadata": {"event_id": 7, "quantity": "2"},
        "receipt_email": "ana@example.test"})
    intent = made["payment_intent"]
    assert [e["type"] for e in made["events"]] == ["payment_intent.created"]
    assert (intent["amount"], intent["currency"], intent["status"], intent["receipt_email"]) == \
        (4200, "eur", "requires_payment_method", "ana@example.test")
    assert intent["metadata"] == {"event_id": "7", "quantity": "2"}
    fetched = fake.client().v1.payment_intents.retrieve(intent["id"])
    assert fetched.id == intent["id"] and fetched.amount == 4200
    canceled = fake.control.post(f"/_chaos/payment_intents/{intent['id']}/cancel")
    assert [e["type"] for e in canceled["events"]] == ["payment_intent.canceled"]
    assert canceled["payment_intent"]["status"] == "canceled"
    assert canceled["payment_intent"]["cancellation_reason"] == "abandoned"
    refused = httpx.post(fake.url + "/_chaos/payment_intents", json={"currency": "usd"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "amount"


# -- Charges as pretix re-fetches them -------------------------------------------------------------


def test_pretix_refetch_sees_refunds_and_the_dispute(fake: Fake):
    intent = paid_intent(fake)
    sc = fake.client()
    fresh = sc.v1.charges.retrieve(intent.latest_charge, params={"expand": PRETIX_CHARGE})
    assert fresh.dispute is None and fresh.refunds.total_count == 0
    assert fresh.payment_intent.id == intent.id
    assert fresh.payment_intent.latest_charge.id == fresh.id  # nested expansion

    refund = sc.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1200})
    assert refund.balance_transaction.startswith("txn_")
    disputed = fake.control.post("/_chaos/disputes", {"charge": fresh.id})
    assert [e["type"] for e in disputed["events"]] == ["charge.dispute.created"]
    after = sc.v1.charges.retrieve(fresh.id, params={"expand": PRETIX_CHARGE})
    assert (after.amount_refunded, after.refunded, after.disputed) == (1200, False, True)
    assert (after.refunds.total_count, after.refunds.has_more) == (1, False)
    assert after.refunds.url == f"/v1/charges/{fresh.id}/refunds"
    assert [r.id for r in after.refunds.data] == [refund.id]
    assert (after.dispute.object, after.dispute.id, after.dispute.amount) == \
        ("dispute", disputed["dispute"]["id"], 4200)
    listed = v1(fake, "GET", f"/v1/charges/{fresh.id}/refunds").json()
    assert [r["id"] for r in listed["data"]] == [refund.id]


def test_lists_carry_total_count_when_asked_and_expand_their_data(fake: Fake):
    intent = paid_intent(fake)
    plain = v1(fake, "GET", "/v1/charges", payment_intent=intent.id).json()
    assert "total_count" not in plain and [c["id"] for c in plain["data"]] == [intent.latest_charge]
    counted = v1(fake, "GET", "/v1/charges", **{"payment_intent": intent.id,
                                                "include[]": "total_count"}).json()
    assert counted["total_count"] == 1
    expanded = v1(fake, "GET", "/v1/charges", **{"payment_intent": intent.id,
                                                 "expand[]": "data.payment_intent"}).json()
    assert expanded["data"][0]["payment_intent"]["id"] == intent.id
    bad = v1(fake, "GET", "/v1/charges", **{"include[]": "everything"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "include[0]"


@pytest.mark.parametrize("kind, expand, message", [
    ("charge", "metadata", "This property cannot be expanded (metadata)."),
    ("charge", "source", "This property cannot be expanded (source)."),
    ("payment_intent", "latest_charge.metadata",
     "This property cannot be expanded (latest_charge.metadata)."),
    ("payment_intent", "charges", "This property cannot be expanded (charges)."),
    ("charges", "payment_intent", "This property cannot be expanded (payment_intent). You "
     "may want to try expanding 'data.payment_intent' instead."),
])
def test_an_expansion_stripe_forbids_gets_stripes_error(fake: Fake, kind, expand, message):
    intent = paid_intent(fake)
    sc = fake.client()
    call, url = {
        "charge": (lambda p: sc.v1.charges.retrieve(intent.latest_charge, params=p),
                   f"/v1/charges/{intent.latest_charge}"),
        "payment_intent": (lambda p: sc.v1.payment_intents.retrieve(intent.id, params=p),
                           f"/v1/payment_intents/{intent.id}"),
        "charges": (lambda p: sc.v1.charges.list(params=p), "/v1/charges"),
    }[kind]
    answer = v1(fake, "GET", url, **{"expand[]": expand})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"type": "invalid_request_error", "message": message,
                                       "param": "expand[0]"}}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        call({"expand": [expand]})
    assert (raised.value.user_message, raised.value.param) == (message, "expand[0]")


def test_every_id_the_fake_links_is_expandable_where_stripe_allows_it(fake: Fake):
    """Fidelity of the objects, not of the table: a field of a stored object that
    holds another stored object's id expands on the fake exactly when Stripe's
    spec lists it as expandable (so the fake invents no link Stripe lacks)."""
    intent = paid_intent(fake)
    fake.client().v1.refunds.create(params={"charge": intent.latest_charge, "amount": 100})
    fake.control.post("/_chaos/disputes", {"charge": intent.latest_charge})
    session = fake.control.checkout()
    fake.control.pay(session["id"])
    retrieve = {"charge": "/v1/charges/{}", "payment_intent": "/v1/payment_intents/{}",
                "refund": "/v1/refunds/{}", "dispute": "/v1/disputes/{}",
                "checkout.session": "/v1/checkout/sessions/{}",
                "balance_transaction": "/v1/balance_transactions/{}"}
    checked = set()
    for kind, template in retrieve.items():
        for obj in fake.control.objects(kind)[-2:]:
            for name, value in obj.items():
                if not (isinstance(value, str) and "_test_" in value and name != "id"):
                    continue
                answer = v1(fake, "GET", template.format(obj["id"]), **{"expand[]": name})
                assert (answer.status_code == 200) == (name in EXPANDABLE[kind]), (kind, name)
                if answer.status_code == 200:
                    assert isinstance(answer.json()[name], dict)
                checked.add((kind, name))
    assert {("charge", "dispute"), ("charge", "payment_intent"), ("charge", "balance_transaction"),
            ("payment_intent", "latest_charge"), ("refund", "charge"),
            ("checkout.session", "payment_intent"), ("balance_transaction", "source")} <= checked
