"""Stripe's object shapes, built as plain dicts, and list objects.

Pure functions: no clock, no ids, no state. :mod:`chaos.fake_stripe.state`
decides ids, times and transitions; this module only knows what the objects
look like on the wire (the fields handlers and invariants read; not every
field Stripe has). ``expand[]`` is :mod:`chaos.fake_stripe.expansion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def product(id_: str, *, name: str, created: int, metadata: Mapping[str, str]) -> Obj:
    return {"id": id_, "object": "product", "active": True, "created": created,
            "description": None, "livemode": False, "metadata": dict(metadata), "name": name}


def price(id_: str, *, product_id: str, unit_amount: int, currency: str, created: int) -> Obj:
    return {"id": id_, "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": created, "currency": currency, "livemode": False, "metadata": {},
            "product": product_id, "type": "one_time", "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount)}


def line_item(id_: str, *, price_obj: Obj, quantity: int, description: str) -> Obj:
    amount = price_obj["unit_amount"] * quantity
    return {"id": id_, "object": "item", "amount_discount": 0, "amount_subtotal": amount,
            "amount_tax": 0, "amount_total": amount, "currency": price_obj["currency"],
            "description": description, "price": price_obj, "quantity": quantity}


def checkout_session(id_: str, *, amount_total: int, currency: str, created: int,
                     expires_at: int, metadata: Mapping[str, str], customer_email: str | None,
                     client_reference_id: str | None, success_url: str | None,
                     cancel_url: str | None) -> Obj:
    return {
        "id": id_, "object": "checkout.session",
        "amount_subtotal": amount_total, "amount_total": amount_total,
        "cancel_url": cancel_url, "client_reference_id": client_reference_id,
        "created": created, "currency": currency,
        "customer_details": {"email": customer_email} if customer_email else None,
        "customer_email": customer_email, "expires_at": expires_at, "livemode": False,
        "metadata": dict(metadata), "mode": "payment", "payment_intent": None, "payment_link": None,
        "payment_method_types": ["card"], "payment_status": "unpaid", "status": "open",
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": f"https://checkout.stripe.test/c/pay/{id_}",
    }


def payment_intent(id_: str, *, amount: int, currency: str, created: int,
                   metadata: Mapping[str, str], status: str, client_secret: str,
                   description: str | None = None, receipt_email: str | None = None,
                   payment_method: str | None = None,
                   payment_method_types: Sequence[str] = ("card",),
                   confirmation_method: str = "automatic") -> Obj:
    return {"id": id_, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
            "application_fee_amount": None, "automatic_payment_methods": None,
            "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": client_secret, "confirmation_method": confirmation_method,
            "created": created, "currency": currency, "customer": None,
            "description": description, "invoice": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "metadata": dict(metadata),
            "next_action": None, "on_behalf_of": None, "payment_method": payment_method,
            "payment_method_options": {}, "payment_method_types": list(payment_method_types),
            "processing": None, "receipt_email": receipt_email, "review": None,
            "setup_future_usage": None, "shipping": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": status, "transfer_data": None,
            "transfer_group": None}


@dataclass(frozen=True)
class Card:
    """One of Stripe's test PaymentMethods (``pm_card_visa``, ...): what a charge shows,
    and the decline it meets (None: the payment succeeds)."""

    brand: str
    last4: str
    funding: str = "credit"
    decline_code: str | None = None


#: Stripe's test PaymentMethod names the fake knows (each use makes a ``payment_method``).
TEST_CARDS = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_visa_debit": Card("visa", "5556", funding="debit"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_amex": Card("amex", "8431"),
    "pm_card_chargeDeclined": Card("visa", "0002", decline_code="generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": Card("visa", "9995",
                                                        decline_code="insufficient_funds"),
}
DEFAULT_CARD = "pm_card_visa"


def card_details(card: Card) -> Obj:
    """A card charge's ``payment_method_details``."""
    return {"type": "card", "card": {
        "amount_authorized": None, "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None,
                   "cvc_check": "pass"},
        "country": "US", "exp_month": 12, "exp_year": 2034, "fingerprint": f"fp{card.last4}chaos",
        "funding": card.funding, "last4": card.last4, "mandate": None, "network": card.brand,
        "three_d_secure": None, "wallet": None}}


def payment_method(id_: str, *, card: Card, created: int) -> Obj:
    """The PaymentMethod a test card name (``pm_card_visa``) becomes when used, as on Stripe."""
    return {"id": id_, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": _no_billing_details(None),
            "card": {"brand": card.brand, "checks": {"address_line1_check": None,
                                                     "address_postal_code_check": None,
                                                     "cvc_check": "pass"},
                     "country": "US", "display_brand": card.brand, "exp_month": 12,
                     "exp_year": 2034, "fingerprint": f"fp{card.last4}chaos",
                     "funding": card.funding, "generated_from": None, "last4": card.last4,
                     "networks": {"available": [card.brand], "preferred": None},
                     "three_d_secure_usage": {"supported": True}, "wallet": None},
            "created": created, "customer": None, "livemode": False, "metadata": {},
            "type": "card"}


def _no_billing_details(email: str | None) -> Obj:
    return {"address": {"city": None, "country": None, "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": email, "name": None, "phone": None}


def charge(id_: str, *, amount: int, currency: str, created: int, payment_intent_id: str,
           metadata: Mapping[str, str], receipt_email: str | None, status: str,
           payment_method: str | None, card: Card, description: str | None = None) -> Obj:
    return {"id": id_, "object": "charge", "amount": amount, "amount_captured": 0,
            "amount_refunded": 0, "application": None, "application_fee": None,
            "application_fee_amount": None, "balance_transaction": None,
            "billing_details": _no_billing_details(receipt_email),
            "calculated_statement_descriptor": "PAYMENT-CHAOS", "captured": False,
            "created": created, "currency": currency, "customer": None,
            "description": description, "dispute": None, "disputed": False,
            "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "fraud_details": {}, "livemode": False, "metadata": dict(metadata),
            "on_behalf_of": None, "outcome": None, "paid": False,
            "payment_intent": payment_intent_id, "payment_method": payment_method,
            "payment_method_details": card_details(card), "receipt_email": receipt_email,
            "receipt_number": None, "receipt_url": f"https://pay.stripe.test/receipts/{id_}",
            "refunded": False,
            "refunds": list_object([], url=f"/v1/charges/{id_}/refunds", total_count=0),
            "review": None, "shipping": None, "source": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None, "status": status,
            "transfer_data": None, "transfer_group": None}


def outcome(*, declined: str | None = None) -> Obj:
    """A charge's ``outcome``: authorised, or declined by the issuer with ``declined``."""
    if declined is None:
        return {"network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                "risk_score": 20, "seller_message": "Payment complete.", "type": "authorized"}
    return {"network_status": "declined_by_network", "reason": declined, "risk_level": "normal",
            "risk_score": 20, "seller_message": "The bank did not return any further details "
            "with this decline.", "type": "issuer_declined"}


def balance_transaction(id_: str, *, amount: int, currency: str, created: int, source: str,
                        type_: str) -> Obj:
    """What a charge (``type_`` charge) or refund (refund, negative) did to the balance."""
    return {"id": id_, "object": "balance_transaction", "amount": amount,
            "available_on": created + 2 * 24 * 3600, "created": created, "currency": currency,
            "description": None, "exchange_rate": None, "fee": 0, "fee_details": [],
            "net": amount, "reporting_category": type_, "source": source, "status": "pending",
            "type": type_}


def refund(id_: str, *, amount: int, charge_obj: Obj, created: int, reason: str | None,
           metadata: Mapping[str, str]) -> Obj:
    return {"id": id_, "object": "refund", "amount": amount, "charge": charge_obj["id"],
            "created": created, "currency": charge_obj["currency"], "metadata": dict(metadata),
            "balance_transaction": None, "destination_details": None,
            "payment_intent": charge_obj["payment_intent"], "reason": reason,
            "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None}


def dispute(id_: str, *, charge_obj: Obj, created: int, reason: str) -> Obj:
    return {"id": id_, "object": "dispute", "amount": charge_obj["amount"],
            "charge": charge_obj["id"], "created": created, "currency": charge_obj["currency"],
            "balance_transactions": [], "evidence": {}, "evidence_details": {},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": charge_obj["payment_intent"], "reason": reason,
            "status": "needs_response"}


def event(id_: str, *, type_: str, obj: Obj, created: int, api_version: str,
          request: Mapping[str, str | None] | None) -> Obj:
    return {"id": id_, "object": "event", "api_version": api_version, "created": created,
            "data": {"object": snapshot(obj)}, "livemode": False, "pending_webhooks": 1,
            "request": dict(request or {"id": None, "idempotency_key": None}),
            "type": type_}


def list_object(data: Sequence[Obj], *, url: str, has_more: bool = False,
                total_count: int | None = None) -> Obj:
    """Stripe's list object; ``total_count`` where Stripe gives it (a list inside an
    object, such as a charge's ``refunds``, or a list endpoint asked for
    ``include[]=total_count``)."""
    listing: Obj = {"object": "list", "data": list(data), "has_more": has_more, "url": url}
    if total_count is not None:
        listing["total_count"] = total_count
    return listing


def snapshot(value: Any) -> Any:
    """A deep copy of a JSON-shaped value (what an event carries: the object as it was)."""
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value
