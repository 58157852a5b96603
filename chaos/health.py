"""Is the target (and the fake Stripe) fit to be judged? A pure reading of the history.

An answer, 5xx included, is judged by the invariants: the database decides.
What ends a run instead is what makes every further example test nothing:

- :func:`target_down`: the target refused every connection, or answered no
  request of an example (it hangs, or crashed), or left
  :data:`FAILING_STREAK` requests in a row without an answer across
  examples (:class:`FailingStreak` carries the count from one example to the next).
- :func:`setup_failure`: the fake Stripe failed a set-up call, or the target's
  checkout endpoint refused what no retry would change (400/401/403/404 to an
  honest checkout, any other unexpected 4xx, an answer the tool cannot read):
  the endpoint and the tool disagree on the contract.

Each returns the error (a :class:`~chaos.errors.ChaosError`, one line that names
the fix) or None; the runner raises it. No I/O here, so the diagnosis is tested
over hand-made histories (``tests/test_health.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from chaos.errors import ChaosError, InfrastructureError, TargetError
from chaos.history import CheckoutRef, History, Op, Outcome

#: Requests at the target left without an answer in a row (refused, reset, timed out)
#: that end the run. An answer, 5xx included, is judged instead: the database decides.
FAILING_STREAK = 20


class FailingStreak:
    """The target's requests without an answer since its last answer, across examples."""

    def __init__(self, limit: int = FAILING_STREAK) -> None:
        self.limit = limit
        self.failing: list[Op] = []   # at most ``limit`` + one example's requests

    def add(self, ops: Iterable[Op]) -> None:
        """Count ``ops`` (in the order they started): an answer clears the streak."""
        for op in ops:
            if op.status is not None:
                self.failing.clear()
            else:
                self.failing.append(op)

    @property
    def broken(self) -> bool:
        return len(self.failing) >= self.limit


def target_down(history: History, *, url: str, request_timeout: float,
                streak: FailingStreak) -> TargetError | None:
    """The error that ends the run when the target is down or hangs: no answer at all in
    this example, or ``streak.limit`` requests in a row; None while it answers.
    Adds the example's requests to ``streak``."""
    at_target = sorted(history.at_target(), key=lambda op: op.start)
    if not at_target:
        return None
    if not any(op.sent for op in at_target):
        return TargetError(
            f"the target at {url} refused all {len(at_target)} connections "
            f"({at_target[0].error}): is it running? It may have crashed"
        )
    if all(op.status is None for op in at_target):
        timeouts = sum(op.sent and (op.error or "").startswith("no answer") for op in at_target)
        if timeouts == len(at_target):
            return TargetError(
                f"the target at {url} accepted connections but answered none of "
                f"{len(at_target)} requests within {request_timeout:g} s: it hangs "
                "(raise --request-timeout if it is only slow)"
            )
        refused = sum(not op.sent for op in at_target)
        dropped = len(at_target) - timeouts - refused
        parts = [f"{dropped} dropped without an answer" if dropped else "",
                 f"{timeouts} unanswered within {request_timeout:g} s" if timeouts else "",
                 f"{refused} refused" if refused else ""]
        return TargetError(
            f"the target at {url} answered none of {len(at_target)} requests "
            f"({', '.join(p for p in parts if p)}): it crashed or hangs; see its log"
        )
    streak.add(at_target)
    if streak.broken:
        kinds = Counter("not delivered" if not op.sent else "no answer" for op in streak.failing)
        what = ", ".join(f"{k} x {n}" for k, n in kinds.most_common())
        return TargetError(
            f"the target at {url} left the last {len(streak.failing)} requests in a row "
            f"without an answer ({what}): it crashed or hangs; see its log"
        )
    return None


#: The config key of the template a Stripe journey's checkout is made from.
_TEMPLATE_KEYS = {"payment-intent": "target.checkout.payment_intent",
                  "payment-link": "target.checkout.payment_link"}


def setup_failure(history: History, *, journey: str, answer_fields: str) -> ChaosError | None:
    """The error that ends the run when the fake Stripe failed a set-up call, or when the
    target's checkout endpoint refuses what no retry would change; None otherwise.

    A checkout that fails under load (5xx, no answer) is a finding: the buyer's story
    stops there, thresholds count it, and :func:`target_down` ends the run if the
    target stops answering at all. But 400/401/403/404 to an honest checkout, any other
    4xx where no refusal was expected (not sold out, no contested key, not tampered),
    or an answer the tool cannot read, mean the endpoint and the tool disagree on the
    contract: every further example would test nothing. ``journey`` names the
    target's journey, ``answer_fields`` the answer fields the tool reads (``url,
    sessionId`` for the reference service)."""
    for op in history.ops:
        if op.door == "stripe" and op.kind == "checkout" and op.outcome is not Outcome.OK:
            return InfrastructureError(
                f"buyer {(op.ref.buyer or 0) + 1}'s checkout at the fake Stripe failed "
                f"on the {journey} journey ({op.method} {op.path}: "
                f"{op.status or op.error} {op.body[:160]}): check "
                f"{_TEMPLATE_KEYS.get(journey, 'target.checkout.session')} and the fixtures' ids")
        if op.door == "stripe" and op.outcome is not Outcome.OK:
            return InfrastructureError(
                f"the fake Stripe API failed a set-up call ({op.method} {op.path}: "
                f"{op.status or op.error}): see its log"
            )
        ref = op.ref
        if not isinstance(ref, CheckoutRef) or op.outcome is Outcome.OK or ref.tampered:
            continue
        malformed = (op.error or "").startswith("malformed answer")
        status = op.status or 0
        refused = status in (400, 401, 403, 404) or (
            400 <= status < 500 and status != 409 and not ref.expect)
        if malformed or refused:
            answer = op.error if malformed else f"HTTP {op.status} {op.body[:160]}".strip()
            return TargetError(
                f"buyer {(op.ref.buyer or 0) + 1}'s checkout at the target failed "
                f"({op.method} {op.path}: {answer}): check its checkout door, the headers "
                f"and payload it expects ({{{answer_fields}}} answers), and its log"
            )
    return None
