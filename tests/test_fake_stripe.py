"""The fake Stripe API as the real stripe-python client sees it."""

from __future__ import annotations

import pytest
import stripe

from chaos.fake_stripe.forms import FormError, decode


def client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_chaos", base_addresses={"api": url},
                               max_network_retries=0)


def test_create_and_retrieve_a_checkout_session_with_stripe_python(fake_stripe):
    sc = client(fake_stripe.url)
    session = sc.v1.checkout.sessions.create(params={
        "mode": "payment",
        "line_items": [{"quantity": 2, "price_data": {
            "currency": "usd", "unit_amount": 2500, "product_data": {"name": "GA"}}}],
        "metadata": {"order_id": "42"},
        "customer_email": "a@b.test",
        "success_url": "http://127.0.0.1/ok",
    })
    assert session.id.startswith("cs_test_")
    assert session.amount_total == 5000
    assert session.metadata["order_id"] == "42"
    again = sc.v1.checkout.sessions.retrieve(session.id)
    assert again.id == session.id and again.payment_status == "unpaid"


def test_missing_line_items_is_a_stripe_shaped_error(fake_stripe):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(fake_stripe.url).v1.checkout.sessions.create(params={"mode": "payment"})
    assert caught.value.http_status == 400
    assert caught.value.param == "line_items"


def test_live_keys_are_refused(fake_stripe):
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_nope", base_addresses={"api": fake_stripe.url},
                            max_network_retries=0).v1.checkout.sessions.retrieve("cs_x")


@pytest.mark.parametrize("body, expected", [
    ("a=1", {"a": "1"}),
    ("metadata[order_id]=42&metadata[x]=", {"metadata": {"order_id": "42", "x": ""}}),
    ("line_items[0][price_data][unit_amount]=2500&line_items[0][quantity]=2",
     {"line_items": [{"price_data": {"unit_amount": "2500"}, "quantity": "2"}]}),
    ("expand[]=line_items&expand[]=payment_intent", {"expand": ["line_items", "payment_intent"]}),
    ("expand[0]=line_items", {"expand": ["line_items"]}),
])
def test_form_decoding_of_nested_keys(body, expected):
    assert decode(body) == expected


def test_a_key_that_is_both_value_and_hash_is_refused():
    with pytest.raises(FormError) as caught:
        decode("metadata=1&metadata[a]=2")
    assert caught.value.param == "metadata[a]"
