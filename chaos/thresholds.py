"""The seed's thresholds, over every request the run sent to the target:
HTTP error rate below 1% and p95 latency below 5 s (both configurable).

Thresholds are not invariants: they judge the run as a whole, not one
example, and they speak about speed and errors, not about money or tickets.
An *error* is a request that got no answer, was never delivered, answered
5xx, or answered 4xx when it had no reason to be refused: a forged
signature, a tampered price or a step that says it expects a refusal
(``ref.expect == "4xx"`` or ``"any"``) is *meant* to be refused.
Requests fired while Stripe faults were armed (``ref.under_fault``) are
not judged at all: answering 5xx, or slowly, is how a correct target copes
with a failing Stripe (the runner leaves them out, and counts them). Nor is
a 5xx to a refund or dispute delivered ahead of its payment an error: Stripe
retries it (:func:`chaos.retries.ahead_of_payment`; the runner counts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaos.history import CheckoutRef, DeliveryRef, Op, percentile

#: Signature variants a correct endpoint may refuse (forged ones, and ``future``).
REFUSABLE_SIGNATURES = frozenset({"tampered", "wrong-secret", "stale", "missing", "future"})


def refusal_expected(op: Op) -> bool:
    """Was this request meant (or allowed) to be refused with 4xx?"""
    ref = op.ref
    if isinstance(ref, CheckoutRef):
        return ref.tampered or ref.expect in ("4xx", "any")
    return isinstance(ref, DeliveryRef) and ref.signature in REFUSABLE_SIGNATURES


def is_error(op: Op) -> bool:
    """Does this request count against the error rate?"""
    if op.status is None or op.status >= 500:
        return True
    if 400 <= op.status < 500:
        return not refusal_expected(op)
    return not 200 <= op.status < 300


@dataclass(frozen=True)
class Thresholds:
    """Limits the run must stay under; ``check`` gives each one's verdict."""

    max_error_rate: float = 0.01
    max_p95: float = 5.0       # seconds

    def check(self, *, requests: int, errors: int, latencies: Sequence[float] = (),
              p95: float | None = None, under_fault: int = 0,
              ahead_of_payment: int = 0) -> dict[str, dict[str, Any]]:
        """Each threshold's verdict, value and limit, by its stable name; ``requests``
        are the judged ones, ``under_fault`` those left out (sent under armed faults),
        ``ahead_of_payment`` the 5xx answers among them not counted as errors.
        The p95 is ``p95`` when given (a run keeps a histogram of the judged requests'
        latencies), else that of ``latencies``."""
        rate = errors / requests if requests else 0.0
        timed = requests if p95 is not None else len(latencies)
        if p95 is None:
            p95 = percentile(list(latencies), 95)
        return {
            "http-error-rate": {"verdict": "pass" if rate < self.max_error_rate else "fail",
                                "value": round(rate, 4), "limit": self.max_error_rate,
                                "errors": errors, "requests": requests,
                                "left_out_under_fault": under_fault,
                                "ahead_of_payment_5xx": ahead_of_payment},
            "http-p95": {"verdict": "pass" if p95 < self.max_p95 else "fail",
                         "value_ms": round(p95 * 1000, 2), "limit_ms": round(self.max_p95 * 1000, 2),
                         "requests": timed},
        }
