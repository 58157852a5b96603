"""Stripe-Signature headers for webhook deliveries, through ``stripe.WebhookSignature``.

One function, :func:`sign`, returns the body to send and the headers to send
it with, for a named signature variant (:data:`VARIANTS`).
``now`` is passed in, never read here, and nothing is random, so the same
inputs always give the same bytes.

What ``stripe.Webhook.construct_event(body, header, secret)`` (stripe-python,
default tolerance 300 s) does with each variant, checked in
``tests/test_signing.py``:

=============  =====================================================  ==========
variant        delivery                                               verdict
=============  =====================================================  ==========
valid          ``t=now,v1=HMAC(secret)`` over the body sent            accepted
rotated        ``t=now,v1=HMAC(old),v1=HMAC(secret)``: Stripe signs    accepted
               with both secrets while one is being rolled; the old    (by either
               one comes first, so a verifier that reads only the      secret)
               first ``v1`` fails
tampered       signed, then the body changed: ``data.object``'s         rejected
               ``amount_total`` (or ``amount``) set to 1, else a
               ``"tampered": true`` field added; still valid JSON, so
               only the signature can catch it
wrong-secret   signed with a secret derived from the real one (never   rejected
               the real one)
stale          signed at ``now - 360`` (beyond the 300 s tolerance)     rejected
future         signed at ``now + 360``                                  ACCEPTED
missing        no Stripe-Signature header at all                       rejected
=============  =====================================================  ==========

``future`` is the one to mind: stripe-python only refuses timestamps older
than the tolerance (``timestamp < time.time() - tolerance``) and accepts any
timestamp ahead of its clock. A target verifying with stripe-python therefore
answers 2xx to a ``future`` delivery; that is the library's behaviour, not the
target's bug, so ``forged-delivery-rejected`` must not count ``future`` as a
forgery. Only a target that checks clock skew both ways would refuse it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import stripe

#: Seconds Stripe's libraries accept between signing and verifying.
TOLERANCE = 300
#: How far past the tolerance ``stale`` and ``future`` deliveries are signed.
SKEW = TOLERANCE + 60
#: Every signature variant (the glossary's "signature variant", docs/design.md).
VARIANTS = ("valid", "tampered", "wrong-secret", "stale", "future", "missing", "rotated")
#: Variants stripe-python's ``construct_event`` accepts.
ACCEPTED = frozenset({"valid", "rotated", "future"})


@dataclass(frozen=True)
class SignedDelivery:
    body: bytes
    headers: dict[str, str]


def sign(payload: str, secret: str, *, now: int, variant: str = "valid",
         old_secret: str | None = None) -> SignedDelivery:
    """Sign ``payload`` with ``secret`` as Stripe does at time ``now``, then apply ``variant``.

    ``old_secret`` is the secret being rotated out (``rotated`` only); when
    not given, one is derived from ``secret``. Raises ``ValueError`` for an
    unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown signature variant {variant!r}: use one of {', '.join(VARIANTS)}")
    body = payload
    headers = {"content-type": "application/json"}
    if variant == "missing":
        return SignedDelivery(body=body.encode(), headers=headers)
    timestamp = now + {"stale": -SKEW, "future": SKEW}.get(variant, 0)
    signing_secret = derived_secret(secret, "wrong") if variant == "wrong-secret" else secret
    header = _header(payload, signing_secret, timestamp)
    if variant == "rotated":
        old = old_secret or derived_secret(secret, "old")
        header = f"t={timestamp},{_v1(payload, old, timestamp)},{_v1(payload, secret, timestamp)}"
    if variant == "tampered":
        body = tamper(payload)
    headers["stripe-signature"] = header
    return SignedDelivery(body=body.encode(), headers=headers)


def _header(payload: str, secret: str, timestamp: int) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret,
                                                                 timestamp=timestamp))


def _v1(payload: str, secret: str, timestamp: int) -> str:
    """The ``v1=...`` element of a header signed with ``secret``."""
    return next(part for part in _header(payload, secret, timestamp).split(",")
                if part.startswith("v1="))


def derived_secret(secret: str, purpose: str) -> str:
    """A whsec_ secret that is not ``secret`` but always the same for it."""
    digest = hashlib.sha256(f"{purpose}:{secret}".encode()).hexdigest()[:32]
    return f"whsec_{purpose}_{digest}"


def tamper(payload: str) -> str:
    """``payload`` changed the way a forger would: the amount lowered to 1 (always a change)."""
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    changed = payload + " "
    if isinstance(event, dict):
        obj = event.get("data", {}).get("object") if isinstance(event.get("data"), dict) else None
        field = next((f for f in ("amount_total", "amount")
                      if isinstance(obj, dict) and f in obj and obj[f] != 1), None)
        if obj is not None and field is not None:
            obj[field] = 1
        else:
            event["tampered"] = True
        changed = json.dumps(event)
    return changed if changed != payload else payload + " "
