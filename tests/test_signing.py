"""Signatures the tester produces are the ones Stripe's own library accepts."""

from __future__ import annotations

import time

import pytest
import stripe

from chaos.signing import sign

SECRET = "whsec_test_signing_secret"
PAYLOAD = '{"id": "evt_1", "object": "event", "type": "checkout.session.completed"}'


def test_valid_signature_round_trips_through_construct_event():
    signed = sign(PAYLOAD, SECRET, now=int(time.time()))
    event = stripe.Webhook.construct_event(signed.body, signed.headers["stripe-signature"],
                                           SECRET)
    assert event["id"] == "evt_1"


def test_signature_is_deterministic_for_the_same_inputs():
    assert sign(PAYLOAD, SECRET, now=1_700_000_000) == sign(PAYLOAD, SECRET, now=1_700_000_000)


def test_a_different_secret_is_rejected():
    signed = sign(PAYLOAD, SECRET, now=int(time.time()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(signed.body, signed.headers["stripe-signature"],
                                       "whsec_someone_else")


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown signature variant"):
        sign(PAYLOAD, SECRET, now=0, variant="psychic")
