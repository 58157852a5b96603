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

def test_a_dispute_answered_5xx_before_its_payment_was_confirmed_is_ahead():
    dispute = deliver(CRASHED, event="charge.dispute.created", event_id="evt_dp")
    later = deliver(OK, start=0.02, end=0.03)
    obs = observe(dispute, later)
    assert [op.ref["event"] for op in ahead_of_payment(obs.history, ("checkout.session.completed",))] \
        == ["charge.dispute.created"]
    retried = RetriedDeliveries()
    retried.add(obs)
    assert retried.ahead == 1
    (note,) = retried.notes()
    assert note["name"] == "answered-5xx-ahead-of-payment"
    assert "Stripe retries each" in note["message"]


def test_a_dispute_answered_5xx_after_its_payment_was_confirmed_is_an_error():
    confirmed = deliver(OK)
    dispute = deliver(CRASHED, event="charge.dispute.created", event_id="evt_dp",
                      start=0.02, end=0.03)
    assert ahead_of_payment(observe(confirmed, dispute).history,
                            ("checkout.session.completed",)) == []


def test_only_what_the_target_confirms_on_counts_as_confirmation():
    completed = deliver(OK)         # acknowledged, but this target confirms on charge.succeeded
    refund = deliver(CRASHED, event="charge.refunded", event_id="evt_re", start=0.02, end=0.03)
    history = observe(completed, refund).history
    assert len(ahead_of_payment(history, ("charge.succeeded",))) == 1
    assert ahead_of_payment(history, ("checkout.session.completed",)) == []


def test_a_confirming_delivery_still_in_flight_does_not_count():
    confirming = deliver(OK, end=0.05)
    dispute = deliver(CRASHED, event="charge.dispute.created", event_id="evt_dp",
                      start=0.01, end=0.02)
    assert len(ahead_of_payment(observe(confirming, dispute).history,
                                ("checkout.session.completed",))) == 1


def test_other_5xx_and_forged_deliveries_are_not_ahead():
    crashed_completion = deliver(CRASHED)
    forged = deliver(CRASHED, event="charge.refunded", signature="tampered", event_id="evt_re")
    assert ahead_of_payment(observe(crashed_completion, forged).history,
                            ("checkout.session.completed",)) == []


def test_the_error_rate_leaves_5xx_ahead_of_payment_out():
    from chaos.run import HttpStats
    from chaos.thresholds import Thresholds

    obs = observe(deliver(CRASHED, event="charge.dispute.created", event_id="evt_dp"),
                  deliver(OK, start=0.02, end=0.03))
    counted, classified = HttpStats(), HttpStats()
    counted.add(obs.history)
    classified.add(obs.history, ahead=ahead_of_payment(obs.history, ("checkout.session.completed",)))
    assert counted.thresholds(Thresholds())["http-error-rate"]["errors"] == 1
    rate = classified.thresholds(Thresholds())["http-error-rate"]
    assert rate["errors"] == 0 and rate["requests"] == 2 and rate["ahead_of_payment_5xx"] == 1
