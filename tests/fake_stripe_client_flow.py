"""A re-fetching integration's calls, as pretix makes them, through whatever
stripe-python the interpreter running this file has (7.x or the current one).

    python tests/fake_stripe_client_flow.py URL KEY TAG

Run by ``tests/test_fake_stripe_clients.py`` with each interpreter; imports
nothing of the project. Prints one JSON object of what the client saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import stripe

PRETIX_CHARGE = ["dispute", "refunds", "payment_intent", "payment_intent.latest_charge"]


def main(url: str, key: str, tag: str) -> dict[str, Any]:
    stripe.api_key = key
    stripe.api_base = url
    stripe.max_network_retries = 0
    stripe.api_version = "2023-10-16"  # what pretix pins
    errors = getattr(stripe, "error", stripe)  # stripe.error went away after 7.x

    account = stripe.Account.retrieve()   # GET /v1/account: who the keys belong to
    intent = stripe.PaymentIntent.create(
        amount=4200, currency="eur", payment_method_types=["card"],
        metadata={"order": f"{tag}-1", "event": "1"}, idempotency_key=f"{tag}-create")
    confirmed = stripe.PaymentIntent.confirm(intent.id, payment_method="pm_card_visa",
                                             expand=["latest_charge"])
    fetched = stripe.PaymentIntent.retrieve(intent.id, expand=["latest_charge"])
    charge = stripe.Charge.retrieve(fetched.latest_charge.id, expand=PRETIX_CHARGE)
    refund = stripe.Refund.create(charge=charge.id, amount=1000, idempotency_key=f"{tag}-refund")
    after = stripe.Charge.retrieve(charge.id, expand=PRETIX_CHARGE)
    try:
        stripe.Charge.retrieve(charge.id, expand=["metadata"])
        forbidden: dict[str, Any] | None = None
    except errors.InvalidRequestError as exc:
        forbidden = {"class": type(exc).__name__, "status": exc.http_status,
                     "message": exc.user_message, "param": exc.param,
                     "type": (exc.json_body or {}).get("error", {}).get("type")}
    return {
        "version": stripe.VERSION,
        "account": {"id": account.id, "object": account.object,
                    "charges_enabled": account.charges_enabled},
        "intent": {"id": intent.id, "status": intent.status,
                   "client_secret": intent.client_secret},
        "confirmed": {"status": confirmed.status, "charge": confirmed.latest_charge.id,
                      "charge_status": confirmed.latest_charge.status},
        "fetched_charge": fetched.latest_charge.id,
        "charge": {"id": charge.id, "dispute": charge["dispute"], "source": charge["source"],
                   "refunds_total": charge["refunds"]["total_count"],
                   "payment_intent": charge.payment_intent.id,
                   "nested_charge": charge.payment_intent.latest_charge.id,
                   "last4": charge.payment_method_details.card.last4,
                   "balance_transaction": charge.balance_transaction,
                   "metadata": charge.metadata.to_dict() if hasattr(charge.metadata, "to_dict")
                   else dict(charge.metadata)},
        "refund": {"id": refund.id, "amount": refund.amount, "status": refund.status},
        "after": {"amount_refunded": after.amount_refunded, "refunded": after.refunded,
                  "refunds_total": after["refunds"]["total_count"],
                  "refund_ids": [r.id for r in after["refunds"]["data"]]},
        "forbidden": forbidden,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
