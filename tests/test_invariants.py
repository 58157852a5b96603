"""Invariants over hand-made histories and rows: each catches its violation,
passes a clean run, and never assumes an ``info`` operation's fate."""

from __future__ import annotations

from chaos.history import History, Op, Outcome
from chaos.invariants import Observation, Payment, check, no_lost_payment, one_ticket_set_per_payment

PI = "pi_test_1"


def delivery(outcome: Outcome, status: int | None = 200) -> Op:
    return Op(index=0, kind="deliver", door="target", method="POST", path="/hook", wave=0,
              step=0, start=0.0, end=0.01, status=status, outcome=outcome, body="",
              ref={"payment_intent": PI, "event": "checkout.session.completed",
                   "signature": "valid"})


def observe(tickets: int | None, *outcomes: Outcome, quantity: int = 2) -> Observation:
    rows = [] if tickets is None else [{"payment_intent": PI, "orders": 1, "tickets": tickets}]
    history = History(ops=[delivery(o, 200 if o is Outcome.OK else None) for o in outcomes])
    return Observation(payments=[Payment(buyer=0, payment_intent=PI, quantity=quantity)],
                       history=history, tickets_per_payment=rows)


def names(obs: Observation) -> list[str]:
    return [v.invariant for v in check(obs)]


def test_a_clean_run_breaks_nothing():
    assert names(observe(2, Outcome.OK, Outcome.OK)) == []


def test_two_ticket_sets_break_one_ticket_set_per_payment():
    violations = one_ticket_set_per_payment(observe(4, Outcome.OK, Outcome.OK))
    assert len(violations) == 1
    assert "bought 2 tickets but has 4" in violations[0].message
    assert violations[0].rows == [{"payment_intent": PI, "orders": 1, "tickets": 4}]


def test_a_partial_ticket_set_breaks_one_ticket_set_per_payment():
    assert "one-ticket-set-per-payment" in names(observe(1, Outcome.INFO))


def test_an_acknowledged_payment_without_tickets_is_lost():
    assert names(observe(None, Outcome.OK)) == ["no-lost-payment"]
    assert no_lost_payment(observe(0, Outcome.OK))[0].message.endswith("has 0 of 2 tickets")


def test_info_deliveries_allow_either_resolution():
    # no answer: the delivery may have taken effect (2 tickets) or not (none)
    assert names(observe(None, Outcome.INFO)) == []
    assert names(observe(2, Outcome.INFO)) == []
    # but never twice
    assert names(observe(4, Outcome.INFO)) == ["one-ticket-set-per-payment"]


def test_a_rejected_delivery_is_not_an_acknowledgement():
    assert names(observe(None, Outcome.FAIL)) == []
