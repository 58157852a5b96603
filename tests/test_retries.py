"""The note about deliveries answered 5xx after their work committed, over
hand-made observations: the database decides whether the work committed, and a
delivery that was acknowledged or got no answer could have done it instead."""

from __future__ import annotations

from chaos.history import Outcome
from chaos.retries import RetriedDeliveries, ahead_of_payment, committed_then_failed
from tests.test_invariants import CRASHED, NO_ANSWER, OK, REJECTED, answered, deliver, observe, row

BAD_GATEWAY = answered(Outcome.FAIL, 502)


def test_every_copy_answered_5xx_and_the_tickets_exist():
    ops = (deliver(CRASHED), deliver(CRASHED, start=0.02, end=0.03))
    assert len(committed_then_failed(observe(*ops))) == 2
    retried = RetriedDeliveries()
    retried.add(observe(*ops))
    note = retried.note()
    assert note is not None and note["name"] == "answered-5xx-after-commit"
    assert note["message"].startswith("every signed delivery answered 5xx (HTTP 500 x 2); "
                                      "2 of them after their work committed (1 payment(s)")
    assert "Stripe will retry" in note["message"]


def test_no_tickets_means_no_work_committed():
    obs = observe(deliver(CRASHED), rows=(row(0),))
    assert committed_then_failed(obs) == []
    retried = RetriedDeliveries()
    retried.add(obs)
    assert retried.failed == {500: 1} and retried.note() is None


def test_an_acknowledged_or_unanswered_copy_may_have_done_the_work():
    assert committed_then_failed(observe(deliver(CRASHED), deliver(OK, start=0.02))) == []
    assert committed_then_failed(observe(deliver(CRASHED), deliver(NO_ANSWER, start=0.02))) == []


def test_forged_deliveries_are_neither_counted_nor_blamed():
    obs = observe(deliver(CRASHED), deliver(REJECTED, signature="tampered", start=0.02))
    assert len(committed_then_failed(obs)) == 1
    retried = RetriedDeliveries()
    retried.add(obs)
    assert retried.answered == 1 and retried.note()["message"].startswith("every signed delivery")


def test_part_of_the_deliveries_and_statuses_by_code():
    retried = RetriedDeliveries()
    retried.add(observe(deliver(BAD_GATEWAY)))
    retried.add(observe(deliver(OK, event_id="evt_2")))
    assert retried.note()["message"].startswith("1 of 2 signed deliveries answered 5xx (HTTP 502 x 1)")


def test_an_example_with_stripe_faults_armed_is_left_out():
    retried = RetriedDeliveries()
    retried.add(observe(deliver(CRASHED, under_fault=True)))
    assert retried.answered == 0 and retried.note() is None


# -- refunds and disputes ahead of their payment ---------------------------------------------

#: buyer 0's payment: the events Stripe created before any refund or dispute that the
#: endpoint is sent (the completion and payment_intent.succeeded)
EARLIER = {0: ["checkout.session.completed", "payment_intent.succeeded"]}
PAID = "payment_intent.succeeded"


def dispute(how, **kw):
    return deliver(how, event="charge.dispute.created", event_id="evt_dp", buyer=0, **kw)


def test_a_dispute_answered_5xx_before_its_payment_was_acknowledged_is_ahead():
    obs = observe(dispute(CRASHED), deliver(OK, start=0.02, end=0.03, buyer=0))
    assert [op.ref.event for op in ahead_of_payment(obs.history, EARLIER)] \
        == ["charge.dispute.created"]
    retried = RetriedDeliveries()
    retried.add(obs, ahead=ahead_of_payment(obs.history, EARLIER))
    assert retried.ahead == 1
    (note,) = retried.notes()
    assert note["name"] == "answered-5xx-ahead-of-payment"
    assert "Stripe retries each" in note["message"]


def test_a_dispute_answered_5xx_after_every_earlier_event_was_acknowledged_is_an_error():
    ops = (deliver(OK, buyer=0), deliver(OK, event=PAID, event_id="evt_pi", buyer=0),
           dispute(CRASHED, start=0.02, end=0.03))
    assert ahead_of_payment(observe(*ops).history, EARLIER) == []


def test_one_earlier_event_still_missing_keeps_it_ahead():
    # pretix's case: charge.succeeded acknowledged (it re-fetched a disputed charge and
    # confirmed nothing), payment_intent.succeeded not yet, so the dispute cannot be placed
    earlier = {0: ["charge.succeeded", PAID]}
    ops = (deliver(OK, event="charge.succeeded", event_id="evt_ch", buyer=0),
           dispute(CRASHED, start=0.02, end=0.03))
    assert len(ahead_of_payment(observe(*ops).history, earlier)) == 1
    assert ahead_of_payment(observe(*ops).history, {0: ["charge.succeeded"]}) == []


def test_an_earlier_delivery_still_in_flight_does_not_count():
    ops = (deliver(OK, end=0.05, buyer=0), deliver(OK, event=PAID, event_id="evt_pi", buyer=0),
           dispute(CRASHED, start=0.01, end=0.02))
    assert len(ahead_of_payment(observe(*ops).history, EARLIER)) == 1


def test_another_buyers_events_and_other_5xx_and_forgeries_are_not_ahead():
    ops = (deliver(OK, buyer=1), deliver(OK, event=PAID, event_id="evt_pi", buyer=1),
           dispute(CRASHED, start=0.02, end=0.03))
    assert len(ahead_of_payment(observe(*ops).history, EARLIER)) == 1   # buyer 1's: no help
    crashed_completion = deliver(CRASHED, buyer=0)
    forged = deliver(CRASHED, event="charge.refunded", signature="tampered", event_id="evt_re",
                     buyer=0)
    assert ahead_of_payment(observe(crashed_completion, forged).history, EARLIER) == []
    assert ahead_of_payment(observe(dispute(CRASHED)).history, {}) == []   # nothing earlier


def test_a_dispute_signed_with_a_future_timestamp_is_ahead_too():
    """Stripe's own libraries accept a future timestamp (clock skew): such a delivery is
    one Stripe could have sent, and retries like any other (pretix: 30 of 32 such 5xx)."""
    early = dispute(CRASHED, signature="future")
    assert ahead_of_payment(observe(early).history, EARLIER) == [early]
    ops = (deliver(OK, end=0.01, buyer=0, signature="future"),
           deliver(OK, event=PAID, event_id="evt_pi", end=0.01, buyer=0),
           dispute(CRASHED, start=0.02, end=0.03, signature="future"))
    assert ahead_of_payment(observe(*ops).history, EARLIER) == []   # acknowledged: not ahead


def test_a_target_that_failed_an_earlier_event_too_is_not_waiting():
    ops = (dispute(CRASHED), deliver(CRASHED, start=0.02, end=0.03, buyer=0))
    assert ahead_of_payment(observe(*ops).history, EARLIER) == []


def test_the_error_rate_leaves_5xx_ahead_of_payment_out():
    from chaos.run import HttpStats
    from chaos.thresholds import Thresholds

    obs = observe(dispute(CRASHED), deliver(OK, start=0.02, end=0.03, buyer=0))
    counted, classified = HttpStats(), HttpStats()
    counted.add(obs.history)
    classified.add(obs.history, ahead=ahead_of_payment(obs.history, EARLIER))
    assert counted.thresholds(Thresholds())["http-error-rate"]["errors"] == 1
    rate = classified.thresholds(Thresholds())["http-error-rate"]
    assert rate["errors"] == 0 and rate["requests"] == 2 and rate["ahead_of_payment_5xx"] == 1
    # none was sent under a fault: the report does not say so
    assert classified.to_data()["failed"] == 1
    assert classified.to_data()["failed_under_fault"] == 0
