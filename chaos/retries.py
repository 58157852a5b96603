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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chaos.history import Op

# what a delivery is for and what it confirms are the invariants' own readings, so the
# note and the verdicts never disagree about them
from chaos.invariants import _accepted, _fulfils, _is_for, _rows_for, _tickets
from chaos.observation import Observation

#: Stripe's documented retry window for a delivery that was not acknowledged.
RETRY_WINDOW = "up to three days"


def committed_then_failed(obs: Observation) -> list[Op]:
    """The deliveries of this example that answered 5xx although their work committed."""
    fulfils = _fulfils(obs)
    deliveries = [op for op in obs.history.at_target()
                  if op.kind == "deliver" and _accepted(op) and fulfils(op) and op.sent]
    found: list[Op] = []
    for session in obs.sessions:
        mine = [op for op in deliveries if _is_for(op, session)]
        if not mine or not all(op.status is not None and op.status >= 500 for op in mine):
            continue
        if _tickets(_rows_for(obs, session)) > 0:
            found.extend(mine)
    return found


@dataclass
class RetriedDeliveries:
    """Over the whole run: validly signed webhook deliveries answered, those
    answered 5xx, and those answered 5xx after their work committed (and the
    payments they were about)."""

    answered: int = 0
    failed: Counter[int] = field(default_factory=Counter)
    after_commit: int = 0
    payments: int = 0

    def add(self, obs: Observation) -> None:
        """Count one example's deliveries (none of an example with Stripe faults armed)."""
        ops = [op for op in obs.history.at_target() if op.kind == "deliver" and _accepted(op)]
        if any(op.ref.under_fault for op in ops):
            return
        for op in ops:
            if op.status is None:
                continue
            self.answered += 1
            if op.status >= 500:
                self.failed[op.status] += 1
        late = committed_then_failed(obs)
        self.after_commit += len(late)
        self.payments += len({op.ref.session or op.ref.payment_intent for op in late})

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
