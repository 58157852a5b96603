"""The catalogue of switchable, real-world bugs in the reference service.

Each entry is a code path a team could ship, not a corruption switch: the
service swaps one step of its work (the event dedup, the capacity hold, the
price, ...) for the version that team wrote. Each entry names the real-world
failure it mirrors (with public reports of it), the invariant that must catch
it, and the smallest story that shows it.

``--bug NAME`` switches one on; several may be on at once, except two that
replace the same step. Names are exact; unknown names are refused before
anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chaos.errors import UsageError


@dataclass(frozen=True)
class Bug:
    """One switchable bug: what the team wrote, what it breaks, what catches it."""

    name: str
    #: What the buggy code does, in one line.
    summary: str
    #: The real-world failure it mirrors, with public reports of it.
    real_world: str
    #: The name of the invariant that must catch it.
    caught_by: str
    #: The smallest story that breaks it (what the tests and the benchmark use).
    breaks_with: str
    #: The step of the service it replaces; two bugs on one step cannot be combined.
    step: str
    #: Requests in the smallest schedule that breaks it (set-up calls and faults are not
    #: schedule requests): what a fully shrunk failure shows (``nox -s mutants`` checks it).
    minimal_requests: int
    #: True when it breaks only when requests overlap, and not on every try.
    race: bool = False

    @property
    def doc(self) -> str:
        return (f"{self.name}: {self.summary}. Real world: {self.real_world}. "
                f"Caught by {self.caught_by}, e.g. {self.breaks_with}.")


_BUGS = [
    Bug(
        name="no-dedup",
        summary="every delivery is processed: no event dedup, and no unique constraint "
                "on tickets, so the fulfilment trusts that each event arrives once",
        real_world="Stripe delivers at least once and retries on timeouts; handlers that "
                   "fulfil per delivery issue two ticket sets for one payment "
                   "(janavipandole/Cara#2753, woocommerce-gateway-stripe#3326)",
        caught_by="one-ticket-set-per-payment",
        breaks_with="one buyer pays, checkout.session.completed delivered twice "
                    "(in one wave or one after the other)",
        step="event dedup",
        minimal_requests=2,  # two copies of one completion
    ),
    Bug(
        name="check-then-insert",
        summary="dedup by SELECT, then the work, then INSERT of the event id, with no "
                "primary key: a sequential retry is caught, concurrent copies both pass",
        real_world="'look up the event id, skip if seen' without a constraint; two "
                   "deliveries in flight together both see nothing and both fulfil "
                   "(woocommerce-gateway-stripe#3326: only reproducible without a pause; "
                   "fossasia/eventyay#3447 review: exists-check race)",
        caught_by="one-ticket-set-per-payment",
        breaks_with="one buyer pays, two copies of checkout.session.completed in one wave "
                    "(a race: it loses most tries, not all)",
        step="event dedup",
        minimal_requests=2,  # two copies in one wave; one copy is processed correctly
        race=True,
    ),
    Bug(
        name="fail-open-dedup",
        summary="recording the event id is wrapped in try/except-and-log so an audit-table "
                "hiccup never drops a payment; a unique violation is swallowed too and "
                "processing carries on",
        real_world="'dedup fails open (logged) so transient errors never drop a real event' "
                   "(khushi897920-lang/hercycle-ai#403); the duplicate key error that was "
                   "the dedup signal becomes a log line and the work runs again",
        caught_by="one-ticket-set-per-payment",
        breaks_with="one buyer pays, checkout.session.completed delivered twice, "
                    "one after the other",
        step="event dedup",
        minimal_requests=2,  # the second copy is what gets processed again
    ),
    Bug(
        name="dedup-before-verify",
        summary="the event id is recorded as processed (committed) before the signature "
                "check and before the work, so a rejected or failed first delivery "
                "poisons every retry as a 'duplicate'",
        real_world="an event stored before its handlers ran is never retried when a "
                   "handler fails: 'on the second retry the event already exists and no "
                   "action is performed' (dj-stripe#832)",
        caught_by="no-lost-payment",
        breaks_with="one buyer pays; checkout.session.completed is delivered with a bad "
                    "signature (4xx), then validly: 2xx 'duplicate' and no tickets",
        step="event dedup",
        minimal_requests=2,  # the bad-signature copy poisons the valid one
    ),
    Bug(
        name="ack-before-commit",
        summary="answers 2xx at once and fulfils in a background task whose errors are "
                "logged and swallowed: when the work fails (Stripe or the database "
                "hiccups) nobody retries it",
        real_world="'acknowledge immediately, process later' without a durable queue hides "
                   "failures from Stripe (dj-stripe#608, dubinc/dub#3752; "
                   "webrenew/unicon#42: events marked processed although the update failed)",
        caught_by="no-lost-payment",
        breaks_with="one buyer pays; checkout.session.completed delivered while the fake "
                    "Stripe fails the service's GET /v1/checkout/sessions/{id}: 2xx, no tickets",
        step="acknowledgement",
        minimal_requests=1,  # one completion; the Stripe outage is a fault, not a request
    ),
    Bug(
        name="oversell",
        summary="availability is checked when pricing, the Stripe session is created, and "
                "only then is the unit taken, with an unconditional increment and no "
                "capacity constraint",
        real_world="check and take in separate steps: concurrent buyers of the last units "
                   "all pass the check (saleor/saleor#543, Attendize/Attendize#473, "
                   "fossasia/eventyay#1359)",
        caught_by="no-oversold-ticket-type",
        breaks_with="capacity 1, two buyers check out in one wave and both pay "
                    "(a race: the Stripe round trip is the window)",
        step="capacity hold",
        minimal_requests=2,  # two checkouts in one wave; the hold counts without any delivery
        race=True,
    ),
    Bug(
        name="order-dependent",
        summary="payment_intent.* and charge.refunded find the order only by the payment "
                "intent the completion stored; before the completion they find nothing "
                "and are acknowledged and dropped",
        real_world="Stripe does not guarantee event order; handlers that 'return if the "
                   "order is not found' lose the event for good "
                   "(woocommerce-gateway-stripe#5058 review, solidusio/solidus_stripe#189); "
                   "refunds that never reach the order leave it paid "
                   "(liberusoftware/ecommerce-laravel#728)",
        caught_by="refund-voids-tickets",
        breaks_with="one buyer pays and is refunded; charge.refunded delivered before "
                    "checkout.session.completed: the tickets stay valid",
        step="payment lookup",
        # charge.refunded alone: the correct service finds the order by its metadata and
        # gives the unit back; this one drops the event and the unit stays taken
        minimal_requests=1,
    ),
    Bug(
        name="unpaid-fulfilled",
        summary="fulfils every checkout.session.completed without checking payment_status, "
                "as if completion meant payment",
        real_world="with delayed payment methods (bank debits) the session completes "
                   "'unpaid' and the money may never come; access granted from an unpaid "
                   "completed session (AI-Shipping-Labs/website#1423, flexprice/flexprice#631)",
        caught_by="no-tickets-without-payment",
        breaks_with="one buyer pays asynchronously; checkout.session.completed with "
                    "payment_status unpaid is delivered (and the payment later fails)",
        step="payment check",
        minimal_requests=1,  # the unpaid completion alone issues tickets
    ),
    Bug(
        name="no-signature-tolerance",
        summary="verifies the signature but not its age (tolerance switched off after a "
                "clock-skew incident), so a captured delivery replays forever",
        real_world="HMAC checked, timestamp never compared: a captured signed webhook can "
                   "be replayed indefinitely (flippercloud/flipper#1022, own-pay/OwnPay#296, "
                   "profullstack/sh1pt#711)",
        caught_by="forged-delivery-rejected",
        breaks_with="one buyer pays; checkout.session.completed delivered once, signed "
                    "400 s ago: 2xx and tickets",
        step="signature check",
        minimal_requests=1,  # one stale delivery
    ),
    Bug(
        name="trust-client-price",
        summary="charges the price the client sent in tickets[].price instead of the "
                "database price, and never compares the total",
        real_world="'a clever client will be able to set the price to whatever they want' "
                   "(testdrivenio/flask-vue-stripe#1, SecureBananaLabs/bug-bounty#4421, "
                   "ynnoj/next-stripe#16)",
        caught_by="charged-database-price",
        breaks_with="one buyer checks out with price 1 instead of the database price: "
                    "the Checkout Session charges 1",
        step="pricing",
        minimal_requests=1,  # one tampered checkout attempt after the set-up checkout
    ),
    Bug(
        name="checkout-not-idempotent",
        summary="ignores the Idempotency-Key header: every checkout request creates an "
                "order and a Stripe session",
        real_world="a double-click or a client retry after a timeout opens two sessions and "
                   "two holds for one purchase (webrenew/memories#374, "
                   "ProgixDev/incacook-app#36)",
        caught_by="one-session-per-idempotency-key",
        breaks_with="one buyer double-clicks: two checkouts with one Idempotency-Key "
                    "get two different sessionIds",
        step="checkout idempotency",
        minimal_requests=1,  # one same-key attempt after the set-up checkout
    ),
    Bug(
        name="500-on-duplicate",
        summary="records the event id with a plain INSERT and lets the unique violation "
                "escape: nothing is processed twice, but a duplicate answers 500",
        real_world="'duplicate key value violates unique constraint' on a redelivered event "
                   "becomes a 500 and Stripe retries it for days and may disable the "
                   "endpoint (dj-stripe/dj-stripe#1239, craftcms/commerce-stripe#44)",
        caught_by="duplicate-delivery-acknowledged",
        breaks_with="one buyer pays, checkout.session.completed delivered twice: the "
                    "second answers 500",
        step="event dedup",
        minimal_requests=2,  # the second copy answers 500
    ),
]

CATALOGUE: dict[str, Bug] = {bug.name: bug for bug in _BUGS}


def parse_bugs(names: Iterable[str]) -> frozenset[str]:
    """The set of bug names, or a UsageError naming the unknown one and the choices,
    or the two chosen bugs that replace the same step."""
    chosen = frozenset(names)
    unknown = sorted(chosen - CATALOGUE.keys())
    if unknown:
        raise UsageError(
            f"unknown bug {unknown[0]!r}: choose from {', '.join(sorted(CATALOGUE))}"
        )
    by_step: dict[str, str] = {}
    for name in sorted(chosen):
        step = CATALOGUE[name].step
        if step in by_step:
            raise UsageError(
                f"bugs {by_step[step]!r} and {name!r} both replace the {step}: choose one"
            )
        by_step[step] = name
    return chosen
