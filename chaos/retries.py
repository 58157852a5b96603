"""Deliveries the target answered 5xx after its work committed: what Stripe retries.

Stripe retries a webhook delivery that got anything but 2xx, for up to three
days. A target that does all its work and then answers 500 (the seed's
``stripe-webhook`` does: a promise-style ``.catch`` on a query builder throws
after the last write) is not down: it is answering, and every answer tells
Stripe to deliver again. So a 5xx is judged like any other answer (the
thresholds count it, the invariants read what the database holds), and this
module adds the run's own note about it: how many deliveries answered 5xx
although the database shows their payment fulfilled.

A delivery counts as *answered 5xx after committing* when it carried a
payment's success with an accepted signature, answered 5xx, and the
database holds tickets for that payment while no delivery of it was
acknowledged or left unanswered (either could have done the work instead).
Examples with Stripe faults armed are left out, as the thresholds leave
them out: there a 5xx may be an honest "Stripe failed, retry me".

A delivery *ahead of its payment* is the other 5xx Stripe's retries settle:
a refund or a dispute (events Stripe creates only after the payment
succeeded) delivered before the target had acknowledged every event Stripe
created earlier for that payment and sends the endpoint (its success:
``payment_intent.succeeded``, ``charge.succeeded``, the completion, as the
endpoint is subscribed to them). Stripe does not deliver events in the
order it created them, so this happens in production; a target that
cannot place the event yet may answer 5xx to be asked again, and Stripe's
retry comes once the earlier events are in (pretix does this: it places a
dispute by the charge id a ``payment_intent.*`` event told it, and fails
without it). Such an answer is not counted against the error rate; the
run's note says how many there were. A 5xx to a refund or dispute that
arrived after all of them still counts, and so does one of a payment whose
earlier events the target answered 5xx too (a target failing everything is
not waiting for anything).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.history import History, Op

# what a delivery is for and what it confirms are the invariants' own readings, so the
# note and the verdicts never disagree about them
from chaos.invariants import _accepted, _forged, _fulfils, _is_for, _rows_for, _tickets
from chaos.observation import Observation

#: Stripe's documented retry window for a delivery that was not acknowledged.
RETRY_WINDOW = "up to three days"


def committed_then_failed(obs: Observation) -> list[Op]:
    """The deliveries of this example that answered 5xx although their work committed."""
    fulfils = _fulfils(obs)
    deliveries = [op for op in obs.history.at_target()
                  if op.delivery is not None and _accepted(op) and fulfils(op) and op.sent]
    found: list[Op] = []
    for session in obs.sessions:
        mine = [op for op in deliveries if _is_for(op, session)]
        if not mine or not all(op.status is not None and op.status >= 500 for op in mine):
            continue
        if _tickets(_rows_for(obs, session)) > 0:
            found.extend(mine)
    return found


#: Events Stripe creates for a payment only once it has succeeded.
AFTER_PAYMENT = frozenset({"charge.refunded", "refund.created", "charge.dispute.created"})
#: Events Stripe creates for a payment as it is made and succeeds: before any refund or
#: dispute of it.
PAYMENT_EVENTS = frozenset({"payment_intent.created", "charge.pending",
                            "payment_intent.processing", "charge.succeeded",
                            "payment_intent.succeeded", "checkout.session.completed",
                            "checkout.session.async_payment_succeeded"})


def ahead_of_payment(history: History, earlier: Mapping[int, Collection[str]]) -> list[Op]:
    """The deliveries of refunds and disputes answered 5xx that were sent before the
    target had acknowledged (2xx) a delivery of each event type ``earlier[buyer]``
    names: the events of the buyer's payment (of :data:`PAYMENT_EVENTS`) that Stripe
    created and sends the endpoint. Any delivery Stripe could have sent counts, a
    ``future`` timestamp included (clock skew: Stripe's own libraries accept it);
    forgeries do not. Not when the target answered 5xx to one of those events as
    well (in the whole example): a target failing everything is not waiting for
    anything."""
    deliveries = [(op, ref) for op in history.at_target()
                  if (ref := op.delivery) is not None and not _forged(op)]
    acknowledged = [(op, ref) for op, ref in deliveries
                    if op.status is not None and 200 <= op.status < 300]
    ahead = []
    for op, ref in deliveries:
        if ref.event not in AFTER_PAYMENT or op.status is None or op.status < 500:
            continue
        buyer = ref.buyer
        needed = set(earlier.get(buyer, ()) if isinstance(buyer, int) else ())
        before = {c_ref.event for c, c_ref in acknowledged
                  if c_ref.buyer == buyer and c.end <= op.start}
        # a target that failed one of those events too is not saying "not yet"
        failed = any(c_ref.buyer == buyer and c_ref.event in needed
                     and c.status is not None and c.status >= 500 for c, c_ref in deliveries)
        if not needed <= before and not failed:
            ahead.append(op)
    return ahead


@dataclass
class RetriedDeliveries:
    """Over the whole run: validly signed webhook deliveries answered, those
    answered 5xx, and those answered 5xx after their work committed (and the
    payments they were about)."""

    answered: int = 0
    failed: Counter[int] = field(default_factory=Counter)
    after_commit: int = 0
    payments: int = 0
    #: answered 5xx ahead of their payment (:func:`ahead_of_payment`)
    ahead: int = 0

    def add(self, obs: Observation, *, ahead: Sequence[Op] = ()) -> None:
        """Count one example's deliveries (none of an example with Stripe faults armed);
        ``ahead`` are those answered 5xx ahead of their payment."""
        ops = [op for op in obs.history.at_target() if op.kind == "deliver" and _accepted(op)]
        if any(op.ref.under_fault for op in ops):
            return
        for op in ops:
            if op.status is None:
                continue
            self.answered += 1
            if op.status >= 500:
                self.failed[op.status] += 1
        self.ahead += len(ahead)
        late = committed_then_failed(obs)
        self.after_commit += len(late)
        self.payments += len({ref.session or ref.payment_intent for op in late
                              if (ref := op.delivery) is not None})

    def notes(self) -> list[dict[str, Any]]:
        """The report's notes about them (none when there is nothing to say)."""
        notes = [self.note(), self.ahead_note()]
        return [note for note in notes if note is not None]

    def ahead_note(self) -> dict[str, Any] | None:
        """The note about 5xx answers to refunds and disputes ahead of their payment."""
        if not self.ahead:
            return None
        message = (f"{self.ahead} refund or dispute deliveries arrived before the target had "
                   f"acknowledged the events of their payment Stripe created earlier, and were "
                   f"answered 5xx: Stripe retries each for {RETRY_WINDOW}, so they are left "
                   f"out of the error rate")
        return {"name": "answered-5xx-ahead-of-payment", "message": message,
                "deliveries": self.ahead}

    def note(self) -> dict[str, Any] | None:
        """The report's note about them, or None when no committed work was answered 5xx."""
        if not self.after_commit:
            return None
        failed = sum(self.failed.values())
        statuses = ", ".join(f"HTTP {s} x {n}" for s, n in sorted(self.failed.items()))
        who = "every signed delivery" if failed == self.answered else \
            f"{failed} of {self.answered} signed deliveries"
        message = (f"{who} answered 5xx ({statuses}); {self.after_commit} of them after their "
                   f"work committed ({self.payments} payment(s) hold their tickets): Stripe "
                   f"will retry each for {RETRY_WINDOW}; answer 2xx once the work is committed")
        return {"name": "answered-5xx-after-commit", "message": message,
                "deliveries": self.answered, "answered_5xx": failed,
                "after_commit": self.after_commit, "payments": self.payments}
