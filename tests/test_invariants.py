"""Invariants over hand-made observations: each catches its violation, passes
a clean run, and never assumes an ``info`` operation's fate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chaos import invariants as inv
from chaos.history import CheckoutRef, DeliveryRef, History, Op, Outcome
from chaos.observation import (
    CheckoutAttempt,
    Observation,
    PaymentOutcome,
    Session,
    StripeCall,
    payment_outcome,
)
from chaos.promises import Promises, judged
from chaos.thresholds import Thresholds, is_error

PI, CS, TT = "pi_test_1", "cs_test_1", "ev-tt1"
COMPLETED, REFUNDED = "checkout.session.completed", "charge.refunded"

CONTRACT = ["one-ticket-set-per-payment", "no-oversold-ticket-type", "no-lost-payment",
            "no-tickets-without-payment", "refund-voids-tickets", "forged-delivery-rejected",
            "charged-database-price", "one-session-per-idempotency-key",
            "duplicate-delivery-acknowledged"]


def answered(outcome: Outcome, status: int | None) -> dict[str, Any]:
    return {"outcome": outcome, "status": status}


OK = answered(Outcome.OK, 200)
REJECTED = answered(Outcome.FAIL, 400)
CRASHED = answered(Outcome.FAIL, 500)
NO_ANSWER = answered(Outcome.INFO, None)
REFUSED = {"outcome": Outcome.FAIL, "status": None, "sent": False}


def deliver(how: dict[str, Any], *, event: str = COMPLETED, signature: str = "valid",
            start: float = 0.0, end: float = 0.01, session: str = CS, event_id: str = "evt_1",
            **ref: Any) -> Op:
    return Op(index=0, kind="deliver", door="target", method="POST", path="/hook", wave=0,
              step=0, start=start, end=end, body="",
              ref=DeliveryRef(session=session, payment_intent=PI, event=event, event_id=event_id,
                      signature=signature, **ref), **how)


def paid(outcome: PaymentOutcome = PaymentOutcome.PAID, **kw: Any) -> Session:
    fields: dict[str, Any] = {"id": CS, "amount_total": 5000, "outcome": outcome,
                              "payment_intent": PI, "buyer": 0, "ticket_type": TT, "quantity": 2,
                              "unit_price": 2500}
    return Session(**{**fields, **kw})


def row(tickets: int, orders: int = 1, session: str | None = CS, **extra: Any) -> dict[str, Any]:
    return {"checkout_session": session, "payment_intent": PI, "orders": orders, "tickets": tickets,
            **extra}


def type_row(tickets: int, reserved: int | None = None, capacity: int = 10) -> dict[str, Any]:
    return {"ticket_type": TT, "capacity": capacity, "tickets": tickets, "reserved": reserved}


PAID, TWO_TICKETS = (paid(),), (row(2),)


def observe(*ops: Op, sessions: tuple[Session, ...] = PAID, rows=TWO_TICKETS, types=(),
            checkouts=(), calls=()) -> Observation:
    history = History(ops=[Op(**{**op.__dict__, "index": i, "step": i})
                           for i, op in enumerate(ops)])
    return Observation(history=history, sessions=sessions, tickets_per_payment=tuple(rows),
                       tickets_per_ticket_type=tuple(types), checkouts=tuple(checkouts),
                       stripe_calls=tuple(calls))


def broken(obs: Observation) -> list[str]:
    return [v.invariant for v in inv.check(obs)]


def test_the_catalogue_is_the_shared_contract():
    assert list(inv.INVARIANTS) == CONTRACT


def test_a_clean_run_breaks_nothing():
    obs = observe(deliver(OK), deliver(OK, start=0.02, end=0.03), types=(type_row(2, 2),),
                  checkouts=(CheckoutAttempt(buyer=0, ticket_type=TT, quantity=2, unit_price=2500,
                                      idempotency_key="k1", session=CS),))
    assert broken(obs) == []


# one-ticket-set-per-payment -------------------------------------------------

def test_two_ticket_sets_break_one_ticket_set_per_payment():
    [v] = inv.one_ticket_set_per_payment(observe(deliver(OK), deliver(OK), rows=(row(4, 2),)))
    assert v.message == f"payment {PI} (buyer 1) bought 2 tickets but has 4 in 2 order(s)"
    assert v.rows == [row(4, 2)]


def test_a_partial_ticket_set_breaks_one_ticket_set_per_payment():
    assert "one-ticket-set-per-payment" in broken(observe(deliver(NO_ANSWER), rows=(row(1),)))


def test_rows_keyed_by_payment_intent_alone_are_matched():
    assert inv.one_ticket_set_per_payment(observe(deliver(OK), rows=(row(4, session=None),)))


def test_info_deliveries_allow_either_resolution():
    # no answer: the delivery may have taken effect (2 tickets) or not (none)
    assert broken(observe(deliver(NO_ANSWER), rows=())) == []
    assert broken(observe(deliver(NO_ANSWER), rows=(row(2),))) == []
    # but never twice
    assert broken(observe(deliver(NO_ANSWER), deliver(NO_ANSWER), rows=(row(4),))) == \
        ["one-ticket-set-per-payment"]


# no-oversold-ticket-type ------------------------------------------------------

def test_more_valid_tickets_than_capacity_is_oversold():
    [v] = inv.no_oversold_ticket_type(observe(types=(type_row(11),)))
    assert v.message == f"ticket type {TT} has 11 valid tickets for a capacity of 10"
    assert v.rows == [type_row(11)]


def test_counting_more_taken_than_capacity_is_oversold():
    [v] = inv.no_oversold_ticket_type(observe(types=(type_row(9, reserved=12),)))
    assert "counts 12 units taken" in v.message


def test_a_full_ticket_type_is_not_oversold():
    assert inv.no_oversold_ticket_type(observe(types=(type_row(10, reserved=10),))) == []


# no-lost-payment ---------------------------------------------------------------

def test_an_acknowledged_payment_without_tickets_is_lost():
    assert broken(observe(deliver(OK), rows=())) == ["no-lost-payment"]
    [v] = inv.no_lost_payment(observe(deliver(OK), rows=(row(0),)))
    assert v.message.endswith("has 0 of 2 tickets")
    assert v.rows[0] == row(0) and v.rows[1]["status"] == 200


@pytest.mark.parametrize("how", [REJECTED, CRASHED, NO_ANSWER, REFUSED])
def test_only_a_2xx_acknowledgement_obliges(how):
    assert inv.no_lost_payment(observe(deliver(how), rows=())) == []


def test_acknowledging_an_unpaid_completion_or_a_forged_one_obliges_nothing():
    assert inv.no_lost_payment(observe(deliver(OK, payment_status="unpaid"), rows=())) == []
    assert inv.no_lost_payment(observe(deliver(OK, signature="tampered"), rows=())) == []


def test_an_acknowledged_async_success_obliges():
    obs = observe(deliver(OK, event="checkout.session.async_payment_succeeded"), rows=())
    assert broken(obs) == ["no-lost-payment"]


def test_a_refunded_or_disputed_payment_may_have_no_tickets():
    for outcome in (PaymentOutcome.REFUNDED, PaymentOutcome.DISPUTED):
        assert inv.no_lost_payment(observe(deliver(OK), sessions=(paid(outcome),), rows=())) == []


# no-tickets-without-payment -----------------------------------------------------

@pytest.mark.parametrize("outcome", [PaymentOutcome.UNPAID, PaymentOutcome.FAILED,
                                     PaymentOutcome.EXPIRED])
def test_tickets_for_a_payment_that_did_not_succeed(outcome):
    [v] = inv.no_tickets_without_payment(observe(deliver(OK), sessions=(paid(outcome),)))
    assert v.message == f"payment {PI} (buyer 1) is {outcome.value} at Stripe but has 2 valid tickets"
    assert inv.no_tickets_without_payment(
        observe(deliver(OK), sessions=(paid(outcome),), rows=(row(0),))) == []


def test_tickets_for_a_session_stripe_does_not_know():
    stranger = {"checkout_session": "cs_nobody", "payment_intent": None, "orders": 1, "tickets": 1}
    [v] = inv.no_tickets_without_payment(observe(deliver(OK), rows=(row(2), stranger)))
    assert v.message.startswith("checkout session cs_nobody has 1 valid ticket but Stripe")
    assert inv.no_tickets_without_payment(
        observe(deliver(OK), rows=(row(2), {**stranger, "tickets": 0}))) == []


# refund-voids-tickets ------------------------------------------------------------

REFUNDED_SESSION = (paid(PaymentOutcome.REFUNDED),)


def refund(how: dict[str, Any], **kw: Any) -> Op:
    return deliver(how, event=REFUNDED, event_id="evt_2", start=1.0, end=1.01, **kw)


def test_an_acknowledged_refund_leaves_no_valid_tickets():
    [v] = inv.refund_voids_tickets(observe(deliver(OK), refund(OK), sessions=REFUNDED_SESSION))
    assert "refund acknowledged with 2xx, but 2 tickets are still valid" in v.message
    assert inv.refund_voids_tickets(
        observe(deliver(OK), refund(OK), sessions=REFUNDED_SESSION, rows=(row(0),))) == []


@pytest.mark.parametrize("how", [NO_ANSWER, REJECTED, REFUSED])
def test_a_refund_that_was_not_acknowledged_obliges_nothing(how):
    # unanswered: the refund may not have arrived, so valid tickets are a possible outcome
    assert inv.refund_voids_tickets(observe(deliver(OK), refund(how), sessions=REFUNDED_SESSION)) == []


def test_an_acknowledged_refund_releases_capacity():
    obs = observe(deliver(OK), refund(OK), sessions=REFUNDED_SESSION, rows=(row(0),),
                  types=(type_row(0, reserved=2),))
    [v] = inv.refund_voids_tickets(obs)
    assert v.message == (f"ticket type {TT} still counts 2 units taken after refunds; the "
                         "payments that were not refunded hold at most 0")
    for reserved in (0, None):
        clean = observe(deliver(OK), refund(OK), sessions=REFUNDED_SESSION, rows=(row(0),),
                        types=(type_row(0, reserved=reserved),))
        assert inv.refund_voids_tickets(clean) == []


PARTIAL_SESSION = (paid(PaymentOutcome.PARTIALLY_REFUNDED),)


def test_a_partial_refund_holds_tickets():
    assert PaymentOutcome.PARTIALLY_REFUNDED.holds_tickets


def test_an_acknowledged_partial_refund_voids_no_ticket():
    # one seat of two refunded: the service voided a ticket (a full refund's work)
    voided = (row(1, voided=1),)
    obs = observe(deliver(OK), refund(OK), sessions=PARTIAL_SESSION, rows=voided)
    [v] = inv.refund_voids_tickets(obs)
    assert v.message == (f"payment {PI} (buyer 1) was refunded in part (the payment stands) and "
                         "the refund acknowledged with 2xx, but 1 of its 2 tickets was voided")
    # blamed on the refund alone: the tickets were issued, so no payment was lost, and
    # the issued set was whole
    assert broken(obs) == ["refund-voids-tickets"]
    kept = observe(deliver(OK), refund(OK), sessions=PARTIAL_SESSION, rows=(row(2, voided=0),))
    assert broken(kept) == []


@pytest.mark.parametrize("how", [NO_ANSWER, REJECTED, REFUSED])
def test_a_partial_refund_that_was_not_acknowledged_obliges_nothing(how):
    obs = observe(deliver(OK), refund(how), sessions=PARTIAL_SESSION, rows=(row(1, voided=1),))
    assert inv.refund_voids_tickets(obs) == []


def test_a_partially_refunded_payment_still_obliges_its_tickets():
    # the completion was acknowledged and no ticket was ever issued: a lost payment
    obs = observe(deliver(OK), refund(OK), sessions=PARTIAL_SESSION, rows=(row(0, voided=0),))
    assert broken(obs) == ["no-lost-payment"]


def test_a_partial_refund_is_not_judged_for_voids_under_the_flag_policy():
    obs = promising(observe(deliver(OK), refund(OK), sessions=PARTIAL_SESSION,
                            rows=(row(1, voided=1),)), refunds="flag")
    assert "refund-voids-tickets" not in broken(obs)


def flagging_shop(*rows: dict[str, Any], sessions: tuple[Session, ...] = PARTIAL_SESSION,
                  refunds: str = "flag") -> Observation:
    """pretix's shape: it confirms on charge.succeeded, which it answered 200 after
    re-fetching the charge, and its rows key the order by the PaymentIntent alone."""
    return promising(observe(deliver(OK, event="charge.succeeded"), sessions=sessions,
                             rows=rows), signatures="refetch", confirms=("charge.succeeded",),
                     refunds=refunds)


def test_a_payment_refunded_in_part_and_flagged_for_an_admin_is_the_admins_to_settle():
    """Stripe refunded part of the charge before the shop confirmed it; the shop re-fetched
    the charge, found the refund and recorded it for an admin (``flagged``) instead of
    issuing tickets. Under ``refunds = "flag"`` that is the shop's promise kept."""
    assert broken(flagging_shop(row(0, session=None, flagged=1))) == []


def test_under_the_void_policy_a_flag_excuses_no_missing_ticket():
    obs = flagging_shop(row(0, session=None, flagged=1), refunds="void")
    [v] = inv.no_lost_payment(obs)
    assert v.message == f"payment {PI} (buyer 1) was acknowledged with 2xx but has 0 of 2 tickets"


@pytest.mark.parametrize("evidence", [{}, {"flagged": 0}, {"flagged": None}])
def test_without_a_flag_in_the_rows_a_payment_refunded_in_part_is_still_lost(evidence):
    # the promise alone excuses nothing: only the target's rows showing the refund
    # recorded for an admin do
    assert broken(flagging_shop(row(0, session=None, **evidence))) == ["no-lost-payment"]


def test_a_flag_does_not_excuse_a_payment_that_stands_in_full():
    # Stripe holds it paid, unrefunded: whatever the shop flagged, the tickets are owed
    assert broken(flagging_shop(row(0, session=None, flagged=1), sessions=PAID)) == \
        ["no-lost-payment"]


def test_a_flagged_payment_refunded_in_part_still_holds_no_partial_ticket_set():
    assert broken(flagging_shop(row(1, session=None, flagged=1))) == \
        ["one-ticket-set-per-payment"]
    assert broken(flagging_shop(row(2, session=None, flagged=1))) == []


# forged-delivery-rejected ----------------------------------------------------------

@pytest.mark.parametrize("signature", sorted(inv.FORGED_SIGNATURES))
def test_a_forged_delivery_must_answer_4xx(signature):
    obs = observe(deliver(OK, signature=signature), rows=())
    [v] = inv.forged_delivery_rejected(obs)
    assert f"signed '{signature}' answered 200; it must be rejected with 4xx" in v.message
    assert inv.forged_delivery_rejected(observe(deliver(REJECTED, signature=signature), rows=())) == []


def test_a_forged_delivery_answered_5xx_is_not_rejected():
    assert inv.forged_delivery_rejected(observe(deliver(CRASHED, signature="stale"), rows=()))


def test_an_unanswered_forged_delivery_may_still_have_been_rejected():
    assert inv.forged_delivery_rejected(observe(deliver(NO_ANSWER, signature="missing"), rows=())) == []


def test_future_and_rotated_signatures_are_not_forged():
    assert broken(observe(deliver(OK, signature="future"), rows=(row(2),))) == []
    assert broken(observe(deliver(OK, signature="rotated"), rows=(row(2),))) == []


def test_a_forged_delivery_must_change_nothing_even_when_it_answers_4xx():
    obs = observe(deliver(REJECTED, signature="tampered"))
    [v] = inv.forged_delivery_rejected(obs)
    assert v.message == (f"payment {PI} (buyer 1) has 2 valid tickets although only forged "
                         "deliveries for it arrived")


def test_tickets_may_come_from_a_real_delivery_sent_alongside_the_forged_one():
    for how in (OK, NO_ANSWER, CRASHED):
        assert inv.forged_delivery_rejected(
            observe(deliver(REJECTED, signature="wrong-secret"), deliver(how))) == []
    # ... but not from one that was never sent
    assert inv.forged_delivery_rejected(
        observe(deliver(REJECTED, signature="wrong-secret"), deliver(REFUSED)))


def test_a_forged_refund_must_not_void_tickets():
    obs = observe(deliver(OK), refund(REJECTED, signature="tampered"), sessions=REFUNDED_SESSION,
                  rows=(row(0, voided=2),))
    [v] = inv.forged_delivery_rejected(obs)
    assert "0 of 2 tickets valid (2 voided) although only forged deliveries of its refund " \
        "arrived" in v.message
    assert inv.forged_delivery_rejected(
        observe(deliver(OK), refund(REJECTED, signature="tampered"), refund(NO_ANSWER),
                sessions=REFUNDED_SESSION, rows=(row(0, voided=2),))) == []


def test_a_lost_payment_is_never_blamed_on_a_forged_refund():
    """Under ``ack-before-commit`` the completion is acknowledged and its work lost; a
    rejected forged refund of the same payment is no evidence of anything. Tickets
    never issued (nothing voided) are a lost payment; issued and voided, a forgery."""
    steps = (deliver(OK), refund(REJECTED, signature="stale"))
    for rows in ((row(0, voided=0),), (row(0),), ()):
        assert broken(observe(*steps, rows=rows)) == ["no-lost-payment"], rows
    assert broken(observe(*steps, rows=(row(0, voided=2),))) == ["forged-delivery-rejected"]


# charged-database-price ---------------------------------------------------------------

def test_charging_the_clients_price_breaks_charged_database_price():
    attempt = CheckoutAttempt(buyer=0, ticket_type=TT, quantity=2, unit_price=2500, sent_unit_price=1,
                       sent_total=2, session=CS)
    [v] = inv.charged_database_price(observe(deliver(OK), sessions=(paid(amount_total=2),),
                                             checkouts=(attempt,)))
    assert v.message == f"payment {PI} (buyer 1) is charged 2 but the database price is 2500 x 2 = 5000"
    assert v.rows == [{"session": CS, "amount_total": 2, "unit_price": 2500, "quantity": 2,
                       "sent_unit_price": 1, "sent_total": 2}]
    assert attempt.tampered
    assert inv.charged_database_price(observe(deliver(OK), checkouts=(attempt,))) == []


# one-session-per-idempotency-key --------------------------------------------------------

def attempt(key: str, session: str | None) -> CheckoutAttempt:
    return CheckoutAttempt(buyer=0, ticket_type=TT, quantity=2, unit_price=2500, idempotency_key=key,
                    session=session)


def test_one_key_two_sessions_in_the_answers():
    [v] = inv.one_session_per_idempotency_key(
        observe(checkouts=(attempt("k1", CS), attempt("k1", "cs_test_2"))))
    assert v.message == f"idempotency key k1 (buyer 1) produced 2 Stripe sessions: {CS}, cs_test_2"


def test_same_key_same_session_and_fresh_keys_are_fine():
    assert inv.one_session_per_idempotency_key(
        observe(checkouts=(attempt("k1", CS), attempt("k1", CS), attempt("k2", "cs_test_2")))) == []


def test_an_unanswered_attempt_still_counts_the_session_stripe_made_for_it():
    # the second click got no answer; Stripe's records show it made a session anyway
    second = paid(id="cs_test_2", idempotency_key="k1")
    obs = observe(sessions=(paid(idempotency_key="k1"), second),
                  checkouts=(attempt("k1", CS), attempt("k1", None)))
    assert inv.one_session_per_idempotency_key(obs)
    calls = (StripeCall("POST", "/v1/checkout/sessions", 200, "k1", CS),
             StripeCall("POST", "/v1/checkout/sessions", 200, "k1", "cs_test_3"))
    assert inv.one_session_per_idempotency_key(
        observe(checkouts=(attempt("k1", None), attempt("k1", None)), calls=calls))
    # an unanswered attempt with nothing at Stripe resolves to "it never happened"
    assert inv.one_session_per_idempotency_key(
        observe(checkouts=(attempt("k1", CS), attempt("k1", None)))) == []


# duplicate-delivery-acknowledged -------------------------------------------------------------

def test_a_later_duplicate_answered_5xx():
    [v] = inv.duplicate_delivery_acknowledged(
        observe(deliver(OK), deliver(CRASHED, start=1.0, end=1.01)))
    assert v.message == ("step 2: a duplicate delivery of checkout.session.completed answered "
                         "500 after step 1 was acknowledged")
    # its rows are numbered like the steps, and name the payment intent of the lane
    assert [(r["step"], r["payment_intent"], r["status"]) for r in v.rows] == \
        [(1, PI, 200), (2, PI, 500)]


def test_a_concurrent_duplicate_answered_409():
    conflict = answered(Outcome.FAIL, 409)
    assert inv.duplicate_delivery_acknowledged(
        observe(deliver(OK, start=0.0, end=0.05), deliver(conflict, start=0.001, end=0.002)))


def test_a_failure_before_any_acknowledgement_is_not_a_duplicate():
    assert inv.duplicate_delivery_acknowledged(
        observe(deliver(CRASHED), deliver(OK, start=1.0, end=1.01))) == []


@pytest.mark.parametrize("how", [NO_ANSWER, REFUSED])
def test_an_unanswered_duplicate_may_have_been_acknowledged(how):
    assert inv.duplicate_delivery_acknowledged(observe(deliver(OK), deliver(how, start=1.0))) == []


def test_a_rejected_forged_copy_is_not_a_duplicate():
    assert inv.duplicate_delivery_acknowledged(
        observe(deliver(OK), deliver(REJECTED, signature="stale", start=1.0, end=1.01))) == []


# thresholds -----------------------------------------------------------------------------------

def test_errors_count_what_had_no_reason_to_fail():
    assert [is_error(deliver(h)) for h in (OK, REJECTED, CRASHED, NO_ANSWER, REFUSED)] == \
        [False, True, True, True, True]
    assert not is_error(deliver(REJECTED, signature="stale"))
    assert is_error(deliver(CRASHED, signature="stale"))
    assert is_error(checkout(REJECTED))
    assert not is_error(checkout(REJECTED, tampered=True))
    assert not is_error(checkout(REJECTED, expect="4xx"))
    assert is_error(checkout(CRASHED, tampered=True))


def checkout(how: dict[str, Any], **ref: Any) -> Op:
    return Op(index=0, kind="checkout", door="target", method="POST", path="/checkout", wave=0,
              step=0, start=0.0, end=0.01, body="", ref=CheckoutRef(buyer=0, **ref), **how)


def test_thresholds_pass_under_their_limits_and_fail_at_them():
    limits = Thresholds(max_error_rate=0.01, max_p95=5.0)
    ok = limits.check(requests=1000, errors=9, latencies=[0.1] * 1000)
    assert {k: v["verdict"] for k, v in ok.items()} == {"http-error-rate": "pass", "http-p95": "pass"}
    bad = limits.check(requests=100, errors=1, latencies=[0.1] * 90 + [6.0] * 10)
    assert {k: v["verdict"] for k, v in bad.items()} == {"http-error-rate": "fail", "http-p95": "fail"}
    assert bad["http-p95"]["value_ms"] == 6000.0


# reading Stripe's own data ---------------------------------------------------------------------

@pytest.mark.parametrize("session, events, outcome", [
    ({"status": "complete", "payment_status": "paid"}, [], PaymentOutcome.PAID),
    ({"status": "open", "payment_status": "unpaid"}, [], PaymentOutcome.UNPAID),
    ({"status": "complete", "payment_status": "unpaid"}, [COMPLETED], PaymentOutcome.UNPAID),
    ({"status": "complete", "payment_status": "unpaid"},
     ["checkout.session.async_payment_failed"], PaymentOutcome.FAILED),
    ({"status": "expired", "payment_status": "unpaid"}, [], PaymentOutcome.EXPIRED),
    ({"status": "complete", "payment_status": "paid"}, [COMPLETED, REFUNDED],
     PaymentOutcome.REFUNDED),
    ({"status": "complete", "payment_status": "paid"}, [COMPLETED, "charge.dispute.created"],
     PaymentOutcome.DISPUTED),
])
def test_the_payment_outcome_is_read_from_stripes_objects_and_events(session, events, outcome):
    assert payment_outcome(session, events) is outcome


def test_a_fake_stripe_record_becomes_a_stripe_call():
    record = {"seq": 3, "method": "POST", "path": "/v1/checkout/sessions", "status": 200,
              "idempotency_key": "k1", "object_id": CS, "params": {}}
    assert StripeCall.from_record(record) == StripeCall("POST", "/v1/checkout/sessions", 200, "k1", CS)
    assert StripeCall.from_record({**record, "status": None}).status == 0


@pytest.mark.parametrize("session, charge, outcome", [
    # a delayed payment that succeeded: the completion's snapshot said unpaid, the session is paid
    ({"status": "complete", "payment_status": "paid"}, {"status": "succeeded"},
     PaymentOutcome.PAID),
    ({"status": "complete", "payment_status": "unpaid"}, {"status": "failed"},
     PaymentOutcome.FAILED),
    ({"status": "complete", "payment_status": "unpaid"}, {"status": "pending"},
     PaymentOutcome.UNPAID),
    ({"status": "complete", "payment_status": "paid"},
     {"status": "succeeded", "refunded": True, "amount_refunded": 5000}, PaymentOutcome.REFUNDED),
    # a partial refund leaves the payment standing: it still holds its tickets
    ({"status": "complete", "payment_status": "paid"},
     {"status": "succeeded", "refunded": False, "amount_refunded": 100},
     PaymentOutcome.PARTIALLY_REFUNDED),
    ({"status": "complete", "payment_status": "paid"},
     {"status": "succeeded", "refunded": False, "amount_refunded": 0}, PaymentOutcome.PAID),
    ({"status": "complete", "payment_status": "paid"}, {"status": "succeeded", "disputed": True},
     PaymentOutcome.DISPUTED),
])
def test_with_the_charge_the_outcome_comes_from_stripes_records_not_events(session, charge,
                                                                           outcome):
    # the events say otherwise on purpose: the charge, as it is now, decides
    assert payment_outcome(session, [REFUNDED, "checkout.session.async_payment_failed"],
                           charge=charge) is outcome


# promises ------------------------------------------------------------------------------

def promising(obs: Observation, **promises: Any) -> Observation:
    return dataclasses.replace(obs, promises=Promises(**promises))


def test_a_checkout_without_idempotency_key_is_not_judged_by_one_session_per_key():
    obs = observe(deliver(OK), checkouts=(attempt("k1", CS), attempt("k1", "cs_test_2")))
    assert broken(obs) == ["one-session-per-idempotency-key"]
    assert broken(promising(obs, idempotency_header="")) == []


def test_a_refund_flagged_for_an_admin_is_not_judged_by_refund_voids_tickets():
    obs = observe(deliver(OK), refund(OK), sessions=REFUNDED_SESSION, rows=(row(2),))
    assert broken(obs) == ["refund-voids-tickets"]
    assert broken(promising(obs, refunds="flag")) == []


def test_a_refetching_webhook_may_acknowledge_a_forgery_that_changes_nothing():
    # a forged completion answered 200: a refetching target read the session from
    # Stripe, found it paid and issued the tickets Stripe's records justify
    obs = observe(deliver(OK, signature="tampered"))
    assert broken(obs) == ["forged-delivery-rejected", "forged-delivery-rejected"]
    assert broken(promising(obs, signatures="refetch")) == []
    # ... but tickets for a payment Stripe says is unpaid are still a forgery's effect
    unpaid = observe(deliver(OK, signature="tampered"),
                     sessions=(paid(PaymentOutcome.UNPAID),))
    assert "forged-delivery-rejected" in broken(promising(unpaid, signatures="refetch"))
    # ... and so is a forged refund that voided a payment Stripe says is still paid
    voided = observe(deliver(OK), refund(OK, signature="wrong-secret"), rows=(row(0, voided=2),))
    assert broken(promising(voided, signatures="refetch")) == ["forged-delivery-rejected"]
    refunded_at_stripe = dataclasses.replace(voided, sessions=REFUNDED_SESSION)
    assert broken(promising(refunded_at_stripe, signatures="refetch")) == []


def test_what_confirms_a_payment_is_the_targets_promise():
    """pretix confirms on charge.succeeded: an acknowledged charge.succeeded obliges
    tickets there; under the default promise it obliges nothing."""
    obs = observe(deliver(OK, event="charge.succeeded"), rows=(row(0),))
    assert broken(obs) == []
    assert broken(promising(obs, confirms=("charge.succeeded",))) == ["no-lost-payment"]
    # and an acknowledged completion obliges nothing where completions do not confirm
    lost = observe(deliver(OK), rows=(row(0),))
    assert broken(lost) == ["no-lost-payment"]
    assert broken(promising(lost, confirms=("charge.succeeded",))) == []


def test_every_invariant_states_its_promise_and_the_declaration_behind_it():
    judged_ = judged(Promises())
    assert [j.invariant for j in judged_] == CONTRACT
    assert all(j.checked and j.promise and j.why for j in judged_)
    [lost] = [j for j in judged(Promises(refunds="flag")) if j.invariant == "no-lost-payment"]
    assert lost.checked and "flagged that refund for an admin" in lost.promise
    assert lost.why.endswith('promises.refunds = "flag"')
    with pytest.raises(ValueError, match="signatures='trust'"):
        Promises(signatures="trust")


def test_deliveries_grouped_per_session_are_exactly_those_is_for_matches_in_history_order():
    # by session id where the delivery names one, else by payment intent; some neither
    refs = [("cs_a", "pi_a"), (None, "pi_a"), ("cs_b", "pi_a"), (None, "pi_b"), (None, None),
            ("cs_a", None), (None, "pi_a"), ("cs_c", "pi_c")]
    ops = []
    for i, (s, p) in enumerate(refs):
        op = deliver(OK, session=s, event_id=f"evt_{i}")  # type: ignore[arg-type]
        ops.append(dataclasses.replace(op, ref=dataclasses.replace(op.ref, payment_intent=p)))
    sessions = tuple(paid(id=s, payment_intent=p) for s, p in
                     [("cs_a", "pi_a"), ("cs_b", None), ("cs_b", "pi_b"), ("cs_x", None),
                      ("cs_c", "pi_a")])
    obs = observe(*ops, sessions=sessions)
    for s in sessions:
        expected = [op.ref.event_id for op in obs.history.ops if inv._is_for(op, s)]
        assert [op.ref.event_id for op in inv._deliveries_for(obs, s)] == expected
    assert [op.ref.event_id for op in inv._deliveries_for(obs, sessions[0])] == \
        ["evt_0", "evt_1", "evt_5", "evt_6"]
