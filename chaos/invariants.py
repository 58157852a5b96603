"""Invariants: pure checks over what was sent (history) and what the target
stored (database rows). Each has a stable name used in reports.

``info`` operations (no answer) are never assumed to have failed or
succeeded: an invariant holds if it holds for some resolution of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import History, Outcome


@dataclass(frozen=True)
class Payment:
    """A payment the tester made: whose, which intent, how many tickets it buys."""

    buyer: int
    payment_intent: str
    quantity: int


@dataclass(frozen=True)
class Observation:
    payments: list[Payment]
    history: History
    #: One row per payment intent: {"payment_intent", "orders", "tickets"}.
    tickets_per_payment: list[dict[str, Any]]


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "message": self.message, "rows": self.rows}


def _rows_by_intent(obs: Observation) -> dict[str, dict[str, Any]]:
    return {row["payment_intent"]: row for row in obs.tickets_per_payment}


def _acknowledged(obs: Observation, payment: Payment) -> bool:
    """Did the target answer 2xx to a delivery of this payment's completion?"""
    return any(
        op.kind == "deliver" and op.outcome is Outcome.OK
        and op.ref.get("payment_intent") == payment.payment_intent
        and op.ref.get("event") == "checkout.session.completed"
        and op.ref.get("signature", "valid") == "valid"
        for op in obs.history.ops
    )


def one_ticket_set_per_payment(obs: Observation) -> list[Violation]:
    """A paid payment intent has no tickets yet, or exactly one set: never two
    sets, never a partial set, whatever number of deliveries arrived."""
    rows = _rows_by_intent(obs)
    found = []
    for p in obs.payments:
        row = rows.get(p.payment_intent)
        tickets = row["tickets"] if row else 0
        if tickets not in (0, p.quantity):
            found.append(Violation(
                "one-ticket-set-per-payment",
                f"payment {p.payment_intent} (buyer {p.buyer + 1}) bought {p.quantity} "
                f"ticket{'s' if p.quantity != 1 else ''} but has {tickets} in "
                f"{row['orders'] if row else 0} order(s)",
                [row] if row else [],
            ))
    return found


def no_lost_payment(obs: Observation) -> list[Violation]:
    """A completion the target acknowledged with 2xx has its tickets."""
    rows = _rows_by_intent(obs)
    found = []
    for p in obs.payments:
        row = rows.get(p.payment_intent)
        tickets = row["tickets"] if row else 0
        if tickets < p.quantity and _acknowledged(obs, p):
            found.append(Violation(
                "no-lost-payment",
                f"payment {p.payment_intent} (buyer {p.buyer + 1}) was acknowledged with 2xx "
                f"but has {tickets} of {p.quantity} tickets",
                [row] if row else [],
            ))
    return found


INVARIANTS: dict[str, Callable[[Observation], list[Violation]]] = {
    "one-ticket-set-per-payment": one_ticket_set_per_payment,
    "no-lost-payment": no_lost_payment,
}


def check(obs: Observation) -> list[Violation]:
    """Every violation of every invariant, in catalogue order."""
    return [v for invariant in INVARIANTS.values() for v in invariant(obs)]
