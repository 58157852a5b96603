"""Signatures the tester produces, judged by Stripe's own library.

Each variant goes through ``stripe.Webhook.construct_event`` with the
target's secret and stripe-python's default 300 s tolerance, as a target
verifying webhooks does.
"""

from __future__ import annotations

import json
import time

import pytest
import stripe

from chaos.signing import ACCEPTED, SKEW, TOLERANCE, VARIANTS, derived_secret, sign, tamper

SECRET = "whsec_test_signing_secret"
OLD_SECRET = "whsec_test_the_previous_secret"
EVENT = {"id": "evt_1", "object": "event", "type": "checkout.session.completed",
         "data": {"object": {"id": "cs_1", "object": "checkout.session", "amount_total": 5000}}}
PAYLOAD = json.dumps(EVENT)


def verify(signed, secret: str = SECRET) -> stripe.Event:
    return stripe.Webhook.construct_event(signed.body, signed.headers.get("stripe-signature"),
                                          secret)


@pytest.mark.parametrize("variant", ["valid", "rotated"])
def test_valid_and_rotated_deliveries_are_accepted(variant):
    signed = sign(PAYLOAD, SECRET, now=int(time.time()), variant=variant, old_secret=OLD_SECRET)
    assert verify(signed)["id"] == "evt_1"
    assert signed.body == PAYLOAD.encode()


def test_a_rotated_delivery_verifies_with_either_secret_and_the_old_signature_comes_first():
    signed = sign(PAYLOAD, SECRET, now=int(time.time()), variant="rotated", old_secret=OLD_SECRET)
    header = signed.headers["stripe-signature"]
    assert header.count("v1=") == 2
    assert verify(signed, OLD_SECRET)["id"] == "evt_1"
    first_only = header.rsplit(",", 1)[0]  # what a verifier reading only the first v1 sees
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(signed.body, first_only, SECRET)


@pytest.mark.parametrize("variant, reason", [
    ("tampered", "No signatures found matching the expected signature"),
    ("wrong-secret", "No signatures found matching the expected signature"),
    ("stale", "Timestamp outside the tolerance zone"),
    ("missing", "No Stripe-Signature header value was provided"),
])
def test_bad_deliveries_are_rejected(variant, reason):
    signed = sign(PAYLOAD, SECRET, now=int(time.time()), variant=variant)
    with pytest.raises(stripe.SignatureVerificationError, match=reason):
        verify(signed)


def test_missing_sends_no_signature_header_at_all():
    signed = sign(PAYLOAD, SECRET, now=0, variant="missing")
    assert "stripe-signature" not in signed.headers and signed.body == PAYLOAD.encode()


def test_stripe_python_accepts_a_future_timestamp():
    """A recorded fact of the library, not a wish: it only refuses timestamps older than
    the tolerance. So a target using it answers 2xx to ``future``; that is no forgery
    accepted by the target's fault."""
    now = int(time.time())
    signed = sign(PAYLOAD, SECRET, now=now, variant="future")
    assert signed.headers["stripe-signature"].startswith(f"t={now + SKEW},")
    assert SKEW > TOLERANCE
    assert verify(signed)["id"] == "evt_1"
    assert ACCEPTED == {"valid", "rotated", "future"}


def test_the_tampered_body_is_still_json_with_the_amount_lowered():
    signed = sign(PAYLOAD, SECRET, now=int(time.time()), variant="tampered")
    forged = json.loads(signed.body)
    assert forged["data"]["object"]["amount_total"] == 1
    assert {**forged, "data": EVENT["data"]} == EVENT
    # the signature is Stripe's for the original payload: only the body changed
    stripe.WebhookSignature.verify_header(PAYLOAD, signed.headers["stripe-signature"], SECRET,
                                          TOLERANCE)


@pytest.mark.parametrize("payload", ['{"id": "evt_2"}', "not json", '[1, 2]',
                                     '{"data": {"object": {"amount": 1}}}'])
def test_tampering_always_changes_the_body(payload):
    assert tamper(payload) != payload


@pytest.mark.parametrize("variant", VARIANTS)
def test_signing_is_deterministic_for_the_same_inputs(variant):
    assert sign(PAYLOAD, SECRET, now=1_700_000_000, variant=variant) == \
        sign(PAYLOAD, SECRET, now=1_700_000_000, variant=variant)


def test_the_wrong_and_old_secrets_are_derived_never_the_real_one():
    assert derived_secret(SECRET, "wrong") != SECRET
    assert derived_secret(SECRET, "wrong") == derived_secret(SECRET, "wrong")
    signed = sign(PAYLOAD, SECRET, now=1_700_000_000, variant="wrong-secret")
    assert SECRET not in signed.headers["stripe-signature"]


def test_unknown_variant_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown signature variant 'psychic': use one of valid"):
        sign(PAYLOAD, SECRET, now=0, variant="psychic")
