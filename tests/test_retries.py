"""The note about deliveries answered 5xx after their work committed, over
hand-made observations: the database decides whether the work committed, and a
delivery that was acknowledged or got no answer could have done it instead."""

from __future__ import annotations

from chaos.history import Outcome
from chaos.retries import RetriedDeliveries, committed_then_failed
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
