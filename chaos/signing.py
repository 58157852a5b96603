"""Stripe-Signature headers for webhook deliveries, through ``stripe.WebhookSignature``.

One function, :func:`sign`, returns the body to send and the headers to send
it with, for a named signature variant. ``now`` is passed in, never read
here, so the same inputs always give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe

#: Seconds Stripe's libraries accept between signing and verifying.
TOLERANCE = 300


@dataclass(frozen=True)
class SignedDelivery:
    body: bytes
    headers: dict[str, str]


def sign(payload: str, secret: str, *, now: int, variant: str = "valid") -> SignedDelivery:
    """Sign ``payload`` with ``secret`` as Stripe does, then apply ``variant``.

    ``valid`` is a delivery any correct endpoint must accept.
    """
    if variant != "valid":
        raise ValueError(f"unknown signature variant {variant!r}")
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=now)
    return SignedDelivery(
        body=payload.encode(),
        headers={"content-type": "application/json", "stripe-signature": header},
    )
