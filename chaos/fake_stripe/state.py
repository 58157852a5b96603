"""The fake Stripe's objects and the events that follow them, in memory.

Pure state: no HTTP here. Every method runs to completion without awaiting,
so under the single event loop of the server no two calls interleave: a
transition and the events it emits are one atomic step.

Ids are counters with a per-process prefix (``cs_test_<prefix>00000012``), so
objects of one run never collide and a run's ids read in creation order.

Transitions (each returns the events Stripe would emit, in the order it does):

    session open --pay(paid)-----------> complete/paid      payment_intent.created, charge.succeeded,
                                                            payment_intent.succeeded,
                                                            checkout.session.completed
    session open --pay(async_pending)--> complete/unpaid    payment_intent.created, charge.pending,
                                                            payment_intent.processing,
                                                            checkout.session.completed
    complete/unpaid --settle(succeeded)-> complete/paid     charge.succeeded, payment_intent.succeeded,
                                                            checkout.session.async_payment_succeeded
    complete/unpaid --settle(failed)---> complete/unpaid    charge.failed, payment_intent.payment_failed,
                                                            checkout.session.async_payment_failed
    session open --expire--------------> expired            checkout.session.expired
    (none) --create_payment_intent-----> requires_payment_method / requires_confirmation
                                                            payment_intent.created
    intent --confirm(card)-------------> succeeded          charge.succeeded, payment_intent.succeeded
    intent --confirm(declined card)----> requires_payment_method
                                                            charge.failed, payment_intent.payment_failed
    intent --cancel--------------------> canceled           payment_intent.canceled
    charge succeeded --refund----------> amount_refunded    refund.created, charge.refunded
    charge succeeded --dispute---------> disputed           charge.dispute.created

A succeeded charge has a ``balance_transaction`` (``txn_...``), and so has
each refund. ``async_succeeded`` / ``async_failed`` are ``async_pending`` followed at once
by the settle. An event's ``data.object`` is a snapshot of the object when it
was emitted; retrieving the object gives its current state, as on Stripe.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chaos.fake_stripe import objects
from chaos.fake_stripe.errors import StripeError, missing, param_invalid
from chaos.fake_stripe.objects import Obj

API_VERSION = "2024-06-20"
#: Outcomes of ``pay``: the buyer pays at once, or with a delayed method that
#: stays pending, or that settles at once one way or the other.
PAY_OUTCOMES = ("paid", "async_pending", "async_succeeded", "async_failed")
SETTLE_OUTCOMES = ("succeeded", "failed")
#: Id prefix of each object kind (Stripe's ``object`` field -> id prefix).
PREFIXES = {
    "checkout.session": "cs", "payment_intent": "pi", "charge": "ch", "refund": "re",
    "dispute": "dp", "event": "evt", "product": "prod", "price": "price", "item": "li",
    "balance_transaction": "txn", "payment_method": "pm", "payment_link": "plink",
}
KINDS = tuple(PREFIXES)
_SESSION_TTL = 24 * 3600
#: PaymentIntent statuses from which each action is allowed (Stripe's lists).
_UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
               "requires_action", "processing")
_PAST = {"update": "updated", "confirm": "confirmed", "cancel": "canceled"}

Request = Mapping[str, str | None]


@dataclass(frozen=True)
class LineSpec:
    """One line item to create: a new product and price, or an existing ``price_id``."""

    name: str
    unit_amount: int
    quantity: int
    currency: str = "usd"
    price_id: str | None = None


class FakeStripe:
    """Every object the fake Stripe holds, and the transitions between their states."""

    def __init__(self, *, prefix: str = "chaos", now: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self.now = now
        self.objects: dict[str, Obj] = {}
        self.by_kind: dict[str, list[str]] = {kind: [] for kind in KINDS}
        self.line_items: dict[str, list[Obj]] = {}
        #: ``payment_intent_data[metadata]`` of each session: the metadata its
        #: payment intent gets (Stripe does not copy the session's own metadata).
        self.intent_metadata: dict[str, dict[str, str]] = {}
        #: The PaymentIntent id each session's payment will get, where the tester chose
        #: it in advance (a shop that stores the id before the buyer pays, as pretix does).
        self.intent_ids: dict[str, str] = {}
        #: The test card behind each PaymentMethod made (what a charge on it does).
        self.cards: dict[str, objects.Card] = {}
        self._ids = itertools.count(1)

    # -- ids, lookup ---------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{PREFIXES.get(kind, kind)}_test_{self.prefix}{next(self._ids):08d}"

    def _add(self, obj: Obj) -> Obj:
        self.objects[obj["id"]] = obj
        self.by_kind[obj["object"]].append(obj["id"])
        return obj

    def find(self, object_id: str) -> Obj | None:
        return self.objects.get(object_id)

    def get(self, kind: str, object_id: str, *, param: str = "id") -> Obj:
        """The object of ``kind`` called ``object_id``; Stripe's resource_missing otherwise."""
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise missing(kind, object_id, param=param)
        return obj

    def all(self, kind: str) -> list[Obj]:
        """Every object of ``kind``, oldest first."""
        return [self.objects[i] for i in self.by_kind.get(kind, [])]

    def _stamp(self) -> int:
        return int(self.now())

    # -- checkout sessions ---------------------------------------------------------------------

    def create_checkout_session(self, *, line_items: list[LineSpec],
                                currency: str = "usd", metadata: Mapping[str, str] | None = None,
                                customer_email: str | None = None,
                                client_reference_id: str | None = None,
                                success_url: str | None = None, cancel_url: str | None = None,
                                expires_at: int | None = None,
                                intent_metadata: Mapping[str, str] | None = None,
                                intent_id: str | None = None) -> Obj:
        """A new open session with its line items (and their products and prices);
        ``intent_id``, when given, is the id its PaymentIntent gets once it is paid."""
        if intent_id is not None:
            self._reserve_intent_id(intent_id, paying=False)
        created = self._stamp()
        items = []
        for spec in line_items:
            if spec.price_id is not None:
                price = self.get("price", spec.price_id)
            else:
                prod = self._add(objects.product(self.new_id("product"), name=spec.name,
                                                 created=created, metadata={}))
                price = self._add(objects.price(self.new_id("price"), product_id=prod["id"],
                                                unit_amount=spec.unit_amount,
                                                currency=spec.currency, created=created))
            items.append(objects.line_item(self.new_id("item"), price_obj=price,
                                           quantity=spec.quantity, description=spec.name))
        session = objects.checkout_session(
            self.new_id("checkout.session"),
            amount_total=sum(item["amount_total"] for item in items), currency=currency,
            created=created, expires_at=expires_at or created + _SESSION_TTL,
            metadata=metadata or {}, customer_email=customer_email,
            client_reference_id=client_reference_id, success_url=success_url,
            cancel_url=cancel_url,
        )
        self.line_items[session["id"]] = items
        self.intent_metadata[session["id"]] = dict(intent_metadata or {})
        if intent_id is not None:
            self.intent_ids[session["id"]] = intent_id
        return self._add(session)

    def _reserve_intent_id(self, intent_id: str, *, paying: bool = True) -> None:
        """Refuse a chosen PaymentIntent id that is malformed, or taken when paying.
        Sessions may share one (a buyer who opens the shop's payment page twice for
        one order); the first of them paid gets it, paying another is refused."""
        if not re.fullmatch(r"pi_[A-Za-z0-9_]{1,200}", intent_id):
            raise param_invalid("payment_intent_id", f"payment_intent_id {intent_id!r} must "
                                "start with pi_ and hold only letters, digits and _.")
        if paying and intent_id in self.objects:
            raise StripeError(400, f"A PaymentIntent with id {intent_id} already exists: "
                              "choose an id of its own for each payment.",
                              code="resource_already_exists", param="payment_intent_id")

    def session_line_items(self, session: Obj) -> Obj:
        return objects.list_object(self.line_items.get(session["id"], []),
                                   url=f"/v1/checkout/sessions/{session['id']}/line_items")

    def pay(self, session_id: str, outcome: str = "paid") -> list[Obj]:
        """The buyer completes the Checkout Session; ``outcome`` is one of :data:`PAY_OUTCOMES`."""
        if outcome not in PAY_OUTCOMES:
            raise param_invalid("outcome", f"outcome {outcome!r} is not one of "
                                f"{', '.join(PAY_OUTCOMES)}")
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, f"Checkout Session {session_id} is {session['status']}, not "
                              "open: only an open session can be paid.",
                              code="checkout_session_not_open", param="id")
        intent_id = self.intent_ids.get(session_id)
        if intent_id is not None:
            self._reserve_intent_id(intent_id)
        created = self._stamp()
        intent_id = intent_id or self.new_id("payment_intent")
        intent = self._add(objects.payment_intent(
            intent_id, amount=session["amount_total"],
            currency=session["currency"], created=created,
            metadata=self.intent_metadata.get(session_id, {}), status="requires_payment_method",
            client_secret=self._client_secret(intent_id), receipt_email=session["customer_email"],
            payment_method=self.payment_method(objects.DEFAULT_CARD)))
        charge = self._add(objects.charge(
            self.new_id("charge"), amount=intent["amount"], currency=intent["currency"],
            created=created, payment_intent_id=intent["id"], metadata=intent["metadata"],
            receipt_email=session["customer_email"], status="pending",
            payment_method=intent["payment_method"],
            card=self.cards[intent["payment_method"]]))
        intent["latest_charge"] = charge["id"]
        session.update(status="complete", payment_intent=intent["id"])
        events = [self._emit("payment_intent.created", intent)]
        intent["status"] = "processing"
        if outcome == "paid":
            self._succeed(intent, charge)
            session["payment_status"] = "paid"
            return events + [self._emit("charge.succeeded", charge),
                             self._emit("payment_intent.succeeded", intent),
                             self._emit("checkout.session.completed", session)]
        events += [self._emit("charge.pending", charge),
                   self._emit("payment_intent.processing", intent),
                   self._emit("checkout.session.completed", session)]
        if outcome != "async_pending":
            events += self.settle(session_id, outcome.removeprefix("async_"))
        return events

    def settle(self, session_id: str, outcome: str) -> list[Obj]:
        """A delayed payment of a completed, unpaid session succeeds or fails."""
        if outcome not in SETTLE_OUTCOMES:
            raise param_invalid("outcome", f"outcome {outcome!r} is not one of "
                                f"{', '.join(SETTLE_OUTCOMES)}")
        session = self.get("checkout.session", session_id)
        intent = self.find(session["payment_intent"] or "")
        if intent is None or intent["status"] != "processing":
            raise StripeError(400, f"Checkout Session {session_id} has no payment pending: pay it "
                              "with outcome async_pending first.", param="id")
        charge = self.objects[intent["latest_charge"]]
        if outcome == "succeeded":
            self._succeed(intent, charge)
            session["payment_status"] = "paid"
            return [self._emit("charge.succeeded", charge),
                    self._emit("payment_intent.succeeded", intent),
                    self._emit("checkout.session.async_payment_succeeded", session)]
        error = {"code": "payment_intent_payment_attempt_failed", "type": "card_error",
                 "message": "The delayed payment failed."}
        intent.update(status="requires_payment_method", last_payment_error=error)
        charge.update(status="failed", failure_code="payment_intent_payment_attempt_failed",
                      failure_message=error["message"])
        return [self._emit("charge.failed", charge),
                self._emit("payment_intent.payment_failed", intent),
                self._emit("checkout.session.async_payment_failed", session)]

    def _succeed(self, intent: Obj, charge: Obj) -> None:
        intent.update(status="succeeded", amount_received=intent["amount"])
        txn = self._add(objects.balance_transaction(
            self.new_id("balance_transaction"), amount=charge["amount"],
            currency=charge["currency"], created=self._stamp(), source=charge["id"],
            type_="charge"))
        charge.update(status="succeeded", paid=True, captured=True,
                      amount_captured=charge["amount"], balance_transaction=txn["id"],
                      outcome=objects.outcome())

    def _client_secret(self, intent_id: str) -> str:
        """A PaymentIntent's ``client_secret`` (``pi_..._secret_...``): from the id
        counter, not from randomness, so a run replays the same ids."""
        return f"{intent_id}_secret_{self.prefix}{next(self._ids):08d}"

    def expire(self, session_id: str, *, request: Request | None = None) -> tuple[Obj, list[Obj]]:
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, f"Only Checkout Sessions with a status in [\"open\"] can be "
                              f"expired; {session_id} is {session['status']}.",
                              code="checkout_session_not_open", param="session")
        session["status"] = "expired"
        return session, [self._emit("checkout.session.expired", session, request)]

    # -- payment intents (Elements, and integrations that drive them directly) ----------------

    def create_payment_intent(self, *, amount: int, currency: str,
                              metadata: Mapping[str, str] | None = None,
                              description: str | None = None, receipt_email: str | None = None,
                              payment_method: str | None = None,
                              payment_method_types: tuple[str, ...] = ("card",),
                              confirmation_method: str = "automatic",
                              request: Request | None = None) -> tuple[Obj, list[Obj]]:
        """A new PaymentIntent: waiting for a payment method, or for confirmation if it has one."""
        if payment_method is not None:
            payment_method = self.payment_method(payment_method)
        intent_id = self.new_id("payment_intent")
        intent = self._add(objects.payment_intent(
            intent_id, amount=amount, currency=currency, created=self._stamp(),
            metadata=metadata or {}, client_secret=self._client_secret(intent_id),
            status="requires_confirmation" if payment_method else "requires_payment_method",
            description=description, receipt_email=receipt_email, payment_method=payment_method,
            payment_method_types=payment_method_types, confirmation_method=confirmation_method))
        return intent, [self._emit("payment_intent.created", intent, request)]

    def update_payment_intent(self, intent_id: str, changes: Mapping[str, object]) -> Obj:
        """Change an unpaid PaymentIntent (``amount``, ``currency``, ``metadata`` merged,
        ``description``, ``receipt_email``, ``payment_method``); Stripe emits no event."""
        intent = self.get("payment_intent", intent_id, param="intent")
        self._expect(intent, "update", _UPDATABLE)
        method = changes.get("payment_method")
        if isinstance(method, str):
            changes = {**changes, "payment_method": self.payment_method(method)}
        for name, value in changes.items():
            if name == "metadata":
                assert isinstance(value, Mapping)
                merged = {**intent["metadata"], **value}
                intent["metadata"] = {k: v for k, v in merged.items() if v != ""}
            else:
                intent[name] = value
        if changes.get("payment_method") and intent["status"] == "requires_payment_method":
            intent["status"] = "requires_confirmation"
        return intent

    def confirm_payment_intent(self, intent_id: str, *, payment_method: str | None = None,
                               request: Request | None = None) -> tuple[Obj, list[Obj]]:
        """The buyer pays: a Charge is made with the payment method (one of
        :data:`~chaos.fake_stripe.objects.TEST_CARDS`). Returns the events; raises a 402
        ``card_error`` *after* recording the failed charge when the card is declined,
        as Stripe does."""
        intent = self.get("payment_intent", intent_id, param="intent")
        self._expect(intent, "confirm", _CONFIRMABLE)
        method = self.payment_method(payment_method) if payment_method else intent["payment_method"]
        if not method:
            raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing a "
                              "payment method. To confirm the PaymentIntent with "
                              f"{intent_id}, specify a payment method attached to this "
                              "PaymentIntent (payment_method=pm_card_visa).",
                              code="payment_intent_unexpected_state", param="payment_method")
        card = self.cards[method]
        charge = self._add(objects.charge(
            self.new_id("charge"), amount=intent["amount"], currency=intent["currency"],
            created=self._stamp(), payment_intent_id=intent_id, metadata=intent["metadata"],
            receipt_email=intent["receipt_email"], status="pending", payment_method=method,
            card=card, description=intent["description"]))
        intent.update(payment_method=method, latest_charge=charge["id"])
        if card.decline_code is None:
            self._succeed(intent, charge)
            return intent, [self._emit("charge.succeeded", charge, request),
                            self._emit("payment_intent.succeeded", intent, request)]
        message = "Your card was declined."
        error = {"type": "card_error", "code": "card_declined", "decline_code": card.decline_code,
                 "message": message, "charge": charge["id"]}
        charge.update(status="failed", failure_code="card_declined", failure_message=message,
                      outcome=objects.outcome(declined=card.decline_code))
        intent.update(status="requires_payment_method", last_payment_error=error,
                      payment_method=None)  # Stripe detaches a declined method
        events = [self._emit("charge.failed", charge, request),
                  self._emit("payment_intent.payment_failed", intent, request)]
        raise StripeError(402, message, type_="card_error", code="card_declined",
                          extra={"decline_code": card.decline_code, "charge": charge["id"],
                                 "payment_intent": objects.snapshot(intent)},
                          events=events)

    def cancel_payment_intent(self, intent_id: str, *, reason: str | None = None,
                              request: Request | None = None) -> tuple[Obj, list[Obj]]:
        intent = self.get("payment_intent", intent_id, param="intent")
        self._expect(intent, "cancel", _CANCELABLE)
        intent.update(status="canceled", canceled_at=self._stamp(), cancellation_reason=reason)
        return intent, [self._emit("payment_intent.canceled", intent, request)]

    def payment_method(self, name: str) -> str:
        """The id of the PaymentMethod ``name`` stands for: a test card name
        (``pm_card_visa``, see :data:`~chaos.fake_stripe.objects.TEST_CARDS`) makes a new
        one, as on Stripe; an id this fake made is itself; anything else is missing."""
        if name in self.cards:
            return name
        card = objects.TEST_CARDS.get(name)
        if card is None:
            raise missing("payment_method", name, param="payment_method")
        made = self._add(objects.payment_method(self.new_id("payment_method"), card=card,
                                                created=self._stamp()))
        self.cards[made["id"]] = card
        return str(made["id"])

    @staticmethod
    def _expect(intent: Obj, action: str, statuses: tuple[str, ...]) -> None:
        """Stripe's answer to an action the PaymentIntent's status does not allow."""
        if intent["status"] not in statuses:
            raise StripeError(400, f"You cannot {action} this PaymentIntent because it has a "
                              f"status of {intent['status']}. Only a PaymentIntent with one of "
                              f"the following statuses may be {_PAST[action]}: "
                              f"{', '.join(statuses)}.",
                              code="payment_intent_unexpected_state", param="intent")

    # -- after the payment ---------------------------------------------------------------------

    def _paid_charge(self, *, charge: str | None, payment_intent: str | None) -> Obj:
        if charge:
            found = self.get("charge", charge, param="charge")
        elif payment_intent:
            intent = self.get("payment_intent", payment_intent, param="payment_intent")
            found = self.find(intent["latest_charge"] or "") or {}
            if found.get("status") != "succeeded":
                raise StripeError(400, f"PaymentIntent {payment_intent} has no successful "
                                  "charge.", code="charge_not_refundable",
                                  param="payment_intent")
        else:
            raise StripeError(400, "One of the following params should be provided for this "
                              "request: payment_intent or charge.", code="parameter_missing",
                              param="charge", validation=True)
        if found["status"] != "succeeded":
            raise StripeError(400, f"Charge {found['id']} is {found['status']}, not succeeded.",
                              code="charge_not_refundable", param="charge")
        return found

    def refund(self, *, charge: str | None = None, payment_intent: str | None = None,
               amount: int | None = None, reason: str | None = None,
               metadata: Mapping[str, str] | None = None,
               request: Request | None = None) -> tuple[Obj, list[Obj]]:
        """Refund ``amount`` (default: all that is left) of a succeeded charge."""
        found = self._paid_charge(charge=charge, payment_intent=payment_intent)
        left = found["amount"] - found["amount_refunded"]
        if left <= 0:
            raise StripeError(400, f"Charge {found['id']} has already been refunded.",
                              code="charge_already_refunded", param="charge")
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise StripeError(400, f"Refund amount ({amount}) must be between 1 and the "
                              f"unrefunded amount on charge {found['id']} ({left}).",
                              code="amount_too_large", param="amount")
        refund = self._add(objects.refund(self.new_id("refund"), amount=amount, charge_obj=found,
                                          created=self._stamp(), reason=reason,
                                          metadata=metadata or {}))
        txn = self._add(objects.balance_transaction(
            self.new_id("balance_transaction"), amount=-amount, currency=found["currency"],
            created=refund["created"], source=refund["id"], type_="refund"))
        refund["balance_transaction"] = txn["id"]
        found["amount_refunded"] += amount
        found["refunded"] = found["amount_refunded"] == found["amount"]
        found["refunds"]["data"].insert(0, refund)
        found["refunds"]["total_count"] = len(found["refunds"]["data"])
        return refund, [self._emit("refund.created", refund, request),
                        self._emit("charge.refunded", found, request)]

    def dispute(self, *, charge: str | None = None, payment_intent: str | None = None,
                reason: str = "fraudulent") -> tuple[Obj, list[Obj]]:
        found = self._paid_charge(charge=charge, payment_intent=payment_intent)
        if found["disputed"]:
            raise StripeError(400, f"Charge {found['id']} is already disputed.",
                              code="charge_already_disputed", param="charge")
        dispute = self._add(objects.dispute(self.new_id("dispute"), charge_obj=found,
                                            created=self._stamp(), reason=reason))
        found.update(disputed=True, dispute=dispute["id"])
        return dispute, [self._emit("charge.dispute.created", dispute)]

    # -- events --------------------------------------------------------------------------------

    def _emit(self, type_: str, obj: Obj, request: Request | None = None) -> Obj:
        return self._add(objects.event(self.new_id("event"), type_=type_, obj=obj,
                                       created=self._stamp(), api_version=API_VERSION,
                                       request=request))
