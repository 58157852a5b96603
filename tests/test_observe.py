"""Building the observation (chaos.observe) over hand-made plans, histories, Stripe views and
rows: whose session is whose, what a payment's outcome is, and what the invariants then see.
No target, no Stripe, no database."""

from __future__ import annotations

from typing import Any

from chaos import invariants
from chaos.history import CheckoutRef, History, Op, Outcome
from chaos.observation import (
    CheckoutAttempt,
    PaymentOutcome,
    Session,
    StripeCall,
    endpoints_called,
)
from chaos.observe import StripeView, TargetRows, observe
from chaos.plan import Attempt, BuyerBinding, Plan, fault_rules
from chaos.promises import Promises
from strategies import Buyer, Fault, Scenario, TicketType

TT = ("ev-tt1", 42)            # fixture ids: text, and a bigint as some targets return
SCENARIO = Scenario(buyers=(Buyer(quantity=2), Buyer(quantity=1, ticket_type=1)), waves=(),
                    ticket_types=(TicketType(price=2500, capacity=10),
                                  TicketType(price=900, capacity=1)))
COMPLETED = "checkout.session.completed"


def checkout_op(index: int, attempt_id: int, status: int = 200) -> Op:
    return Op(index=index, kind="checkout", door="target", method="POST", path="/checkout",
              wave=None, step=None, start=0.0, end=0.01, status=status,
              outcome=Outcome.OK if status < 400 else Outcome.FAIL, body="",
              ref=CheckoutRef(buyer=attempt_id, attempt_id=attempt_id))


def attempt(id: int, buyer: int, session: str | None, *, unit_price: int = 2500,
            total: int = 5000) -> Attempt:
    return Attempt(id=id, buyer=buyer, attempt=0, idempotency_key=f"key-{buyer}",
                   unit_price=unit_price, total=total, tampered=False, session_id=session)


def session(id: str, *, pi: str, paid: bool = True, **extra: Any) -> dict[str, Any]:
    return {"id": id, "amount_total": 5000, "payment_intent": pi,
            "payment_status": "paid" if paid else "unpaid", "status": "complete", **extra}


def plan(attempts: list[Attempt], bindings: list[BuyerBinding]) -> Plan:
    return Plan(phases=[], bindings=bindings, attempts=attempts, faults=[])


def test_each_checkout_attempt_is_a_checkout_with_its_op_and_the_databases_price():
    the_plan = plan([attempt(1, 0, "cs_a"), attempt(2, 1, None, unit_price=1, total=1)],
                    [BuyerBinding(session_id="cs_a"), BuyerBinding()])
    history = History(ops=[checkout_op(0, 1), checkout_op(1, 2, status=500)])
    seen = observe(SCENARIO, TT, the_plan, history, StripeView(sessions=[]), TargetRows())
    assert seen.checkouts == (
        CheckoutAttempt(buyer=0, ticket_type="ev-tt1", quantity=2, unit_price=2500,
                 idempotency_key="key-0", sent_unit_price=2500, sent_total=5000, op=0,
                 session="cs_a"),
        CheckoutAttempt(buyer=1, ticket_type="42", quantity=1, unit_price=900, idempotency_key="key-1",
                 sent_unit_price=1, sent_total=1, op=1, session=None))
    assert seen.checkouts[1].tampered and not seen.checkouts[0].tampered


def test_a_session_is_its_buyers_by_id_else_read_from_its_metadata():
    the_plan = plan([attempt(1, 0, "cs_a")], [BuyerBinding(session_id="cs_a"), BuyerBinding()])
    stripe = StripeView(sessions=[
        session("cs_a", pi="pi_a"),
        # the target's own session, for the second ticket type: no buyer was answered with it
        session("cs_b", pi="pi_b", metadata={"ticket_type_id": 42, "quantity": "3"}),
    ], charges=[])
    seen = observe(SCENARIO, TT, the_plan, History(), stripe, TargetRows())
    assert seen.sessions == (
        Session(id="cs_a", amount_total=5000, outcome=PaymentOutcome.PAID, payment_intent="pi_a",
                buyer=0, ticket_type="ev-tt1", quantity=2, unit_price=2500,
                idempotency_key="key-0"),
        Session(id="cs_b", amount_total=5000, outcome=PaymentOutcome.PAID, payment_intent="pi_b",
                buyer=None, ticket_type="42", quantity=3, unit_price=900))


def test_refunds_and_disputes_come_from_stripes_charge_not_the_events_sent():
    """The buyer's story sent charge.refunded, but Stripe's charge was never refunded: the
    charge wins. Only a fake Stripe that cannot list charges leaves the events to tell."""
    binding = BuyerBinding(session_id="cs_a", events={COMPLETED: {}, "charge.refunded": {}})
    the_plan = plan([attempt(1, 0, "cs_a")], [binding, BuyerBinding()])
    sessions = [session("cs_a", pi="pi_a")]
    by_charge = observe(SCENARIO, TT, the_plan, History(),
                        StripeView(sessions=sessions,
                                   charges=[{"payment_intent": "pi_a", "refunded": False}]),
                        TargetRows())
    by_events = observe(SCENARIO, TT, the_plan, History(),
                        StripeView(sessions=sessions, charges=None), TargetRows())
    disputed = observe(SCENARIO, TT, the_plan, History(),
                       StripeView(sessions=sessions,
                                  charges=[{"payment_intent": "pi_a", "disputed": True}]),
                       TargetRows())
    assert [o.sessions[0].outcome for o in (by_charge, by_events, disputed)] == \
        [PaymentOutcome.PAID, PaymentOutcome.REFUNDED, PaymentOutcome.DISPUTED]


def test_without_a_session_list_the_completion_snapshot_stands_in():
    completed = {"data": {"object": session("cs_a", pi="pi_a")}}
    the_plan = plan([attempt(1, 0, "cs_a")],
                    [BuyerBinding(session_id="cs_a", events={COMPLETED: completed}),
                     BuyerBinding(session_id="cs_x")])   # bound, but no completion: not listed
    seen = observe(SCENARIO, TT, the_plan, History(), StripeView(sessions=None), TargetRows())
    assert [(s.id, s.buyer, s.outcome) for s in seen.sessions] == \
        [("cs_a", 0, PaymentOutcome.PAID)]


def test_rows_calls_and_promises_pass_through_with_ticket_types_as_text():
    rows = TargetRows(
        tickets_per_payment=({"checkout_session": "cs_a", "payment_intent": "pi_a", "orders": 1,
                              "tickets": 4},),
        tickets_per_ticket_type=({"ticket_type": 42, "capacity": 1, "tickets": 2,
                                  "reserved": None},
                                 {"ticket_type": None, "capacity": 0, "tickets": 0,
                                  "reserved": None}),
        queries=(("no-orphans", "orphan ticket", ({"id": 7},)),))
    calls = [StripeCall("POST", "/v1/checkout/sessions", 200, "key-0", "cs_a")]
    promises = Promises()
    seen = observe(SCENARIO, TT, plan([], [BuyerBinding(), BuyerBinding()]), History(),
                   StripeView(sessions=[], calls=calls), rows, promises=promises)
    assert [r["ticket_type"] for r in seen.tickets_per_ticket_type] == ["42", None]
    assert seen.tickets_per_payment == rows.tickets_per_payment
    assert seen.stripe_calls == tuple(calls) and seen.queries == rows.queries
    assert seen.promises is promises


def test_the_invariants_read_what_observe_built():
    """Two ticket sets for one paid session, and the second ticket type oversold: observed
    from rows alone, each invariant names its evidence."""
    the_plan = plan([attempt(1, 0, "cs_a")], [BuyerBinding(session_id="cs_a"), BuyerBinding()])
    rows = TargetRows(
        tickets_per_payment=({"checkout_session": "cs_a", "payment_intent": "pi_a", "orders": 2,
                              "tickets": 4},),
        tickets_per_ticket_type=({"ticket_type": "ev-tt1", "capacity": 10, "tickets": 4,
                                  "reserved": None},
                                 {"ticket_type": 42, "capacity": 1, "tickets": 2,
                                  "reserved": None}))
    seen = observe(SCENARIO, TT, the_plan, History(ops=[checkout_op(0, 1)]),
                   StripeView(sessions=[session("cs_a", pi="pi_a")], charges=[]), rows)
    broken = {v.invariant: v.rows for v in invariants.check(seen)}
    assert "one-ticket-set-per-payment" in broken and "no-oversold-ticket-type" in broken
    assert broken["no-oversold-ticket-type"][0]["ticket_type"] == "42"


def test_a_bare_payment_intent_is_seen_as_its_payment():
    """The payment-intent journey: the PaymentIntent is the payment, under its own id;
    succeeded reads as paid, canceled as expired, a declined one as failed by its charge."""
    from chaos.observe import intent_as_session

    def intent(id: str, status: str) -> dict[str, Any]:
        return {"id": id, "object": "payment_intent", "amount": 5000, "currency": "usd",
                "status": status, "metadata": {"event_id": "7"}}

    the_plan = plan([attempt(1, 0, "pi_a"), attempt(2, 1, "pi_b")],
                    [BuyerBinding(session_id="pi_a", payment_intent="pi_a"),
                     BuyerBinding(session_id="pi_b", payment_intent="pi_b")])
    stripe = StripeView(sessions=[intent_as_session(intent("pi_a", "succeeded")),
                                  intent_as_session(intent("pi_b", "canceled")),
                                  intent_as_session(intent("pi_c", "requires_payment_method"))],
                        charges=[{"id": "ch_c", "payment_intent": "pi_c", "status": "failed"}])
    seen = observe(SCENARIO, TT, the_plan, History(), stripe, TargetRows())
    assert [(s.id, s.payment_intent, s.outcome, s.buyer, s.amount_total) for s in seen.sessions] \
        == [("pi_a", "pi_a", PaymentOutcome.PAID, 0, 5000),
            ("pi_b", "pi_b", PaymentOutcome.EXPIRED, 1, 5000),
            ("pi_c", "pi_c", PaymentOutcome.FAILED, None, 5000)]


def test_the_endpoints_called_are_the_models_templates_the_calls_match():
    calls = [StripeCall("GET", "/v1/checkout/sessions/cs_a", 200),
             StripeCall("POST", "/v1/checkout/sessions", 200, "key-0", "cs_a"),
             StripeCall("GET", "/v1/checkout/sessions/cs_a/line_items", 200),
             StripeCall("GET", "/v1/charges", 200),            # a list: no template of ours
             StripeCall("POST", "/v1/charges/ch_a", 200)]      # an update, not a read
    assert endpoints_called(calls) == ("POST /v1/checkout/sessions",
                                       "GET /v1/checkout/sessions/{id}",
                                       "GET /v1/checkout/sessions/{id}/line_items")
    assert endpoints_called([]) == ()


def test_an_outage_is_armed_as_one_rule_per_call():
    outage = Fault(kind="5xx", endpoint="GET /v1/checkout/sessions/{id}", nth=2, times=3)
    rules = fault_rules(outage, hang_seconds=5.0)
    assert [r["nth"] for r in rules] == [2, 3, 4]
    assert {(r["method"], r["path"], r["kind"], r["status"]) for r in rules} == {
        ("GET", "/v1/checkout/sessions/*", "error", 500)}
    assert fault_rules(Fault(kind="hang"), hang_seconds=5.0) == [
        {"method": "POST", "path": "/v1/checkout/sessions", "kind": "hang", "max_seconds": 5.0,
         "nth": 1}]
