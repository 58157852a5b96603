"""The target-health diagnosis (chaos.health) over hand-made histories: which histories end
the run, with which one-line error, and which are judged by the invariants instead."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.errors import InfrastructureError, TargetError
from chaos.health import FAILING_STREAK, FailingStreak, setup_failure, target_down
from chaos.history import History, Op, Outcome
from tests.helpers import ref_of

URL = "http://127.0.0.1:9"


def op(status: int | None, *, sent: bool = True, error: str | None = None, door: str = "target",
       kind: str = "deliver", start: float = 0.0, body: str = "", outcome: Outcome | None = None,
       **ref: Any) -> Op:
    """One request as the executor records it (a 2xx is ok, no answer info, else fail)."""
    outcome = outcome or (Outcome.INFO if status is None and sent else
                          Outcome.OK if status is not None and status < 300 else Outcome.FAIL)
    return Op(index=0, kind=kind, door=door, method="POST", path="/p", wave=0, step=0,
              start=start, end=start + 0.01, status=status, outcome=outcome, body=body,
              error=error, ref=ref_of(kind, **ref), sent=sent)


REFUSED = {"status": None, "sent": False, "error": "connection refused"}
TIMED_OUT = {"status": None, "error": "no answer within 10 s"}
DROPPED = {"status": None, "error": "connection reset"}


def down(*ops: Op, streak: FailingStreak | None = None) -> str | None:
    error = target_down(History(ops=list(ops)), url=URL, request_timeout=10.0,
                        streak=streak if streak is not None else FailingStreak())
    assert error is None or isinstance(error, TargetError)
    return None if error is None else str(error)


def test_answers_of_any_status_are_judged_not_diagnosed():
    assert down(op(200), op(500), op(503), op(**TIMED_OUT)) is None
    assert down() is None                                     # nothing at the target
    assert down(op(door="stripe", **REFUSED)) is None   # the fake Stripe is not the target


@pytest.mark.parametrize("ops, expected", [
    ([REFUSED, REFUSED],
     f"the target at {URL} refused all 2 connections (connection refused): is it running? "
     "It may have crashed"),
    ([TIMED_OUT] * 3,
     f"the target at {URL} accepted connections but answered none of 3 requests within 10 s: "
     "it hangs (raise --request-timeout if it is only slow)"),
    ([TIMED_OUT, DROPPED, DROPPED, REFUSED],
     f"the target at {URL} answered none of 4 requests (2 dropped without an answer, "
     "1 unanswered within 10 s, 1 refused): it crashed or hangs; see its log"),
])
def test_an_example_without_a_single_answer_ends_the_run(ops, expected):
    assert down(*[op(**o) for o in ops]) == expected


def test_a_streak_of_requests_without_an_answer_after_the_last_answer_ends_the_run():
    """The checkout endpoint answers, the webhook endpoint never does: the example is not
    silent, but FAILING_STREAK requests in a row after the last answer are."""
    half = FAILING_STREAK // 2
    silent = [op(**(REFUSED if i % 2 else TIMED_OUT), start=1.0 + i)
              for i in range(FAILING_STREAK)]
    message = down(op(200, start=0.0), *silent)
    assert message == (f"the target at {URL} left the last {FAILING_STREAK} requests in a row "
                       f"without an answer (no answer x {half}, not delivered x {half}): "
                       "it crashed or hangs; see its log")
    assert down(op(200, start=0.0), *silent[:-1]) is None       # one fewer: judged


def test_the_streak_is_carried_across_examples_and_an_answer_clears_it():
    streak = FailingStreak()
    half = FAILING_STREAK // 2
    example = [op(200, start=0.0)] + [op(**TIMED_OUT, start=1.0 + i) for i in range(half)]
    assert down(*example, streak=streak) is None
    assert len(streak.failing) == half
    assert down(op(500, start=0.0), streak=streak) is None       # a 5xx is an answer
    assert streak.failing == []


def test_the_streak_counts_in_the_order_requests_started_not_answered():
    streak = FailingStreak(limit=3)
    ops = [op(**TIMED_OUT, start=3.0), op(**TIMED_OUT, start=2.0), op(200, start=1.0),
           op(**TIMED_OUT, start=4.0)]
    assert down(*ops, streak=streak) is not None   # the answer came first: 3 silent after it
    assert FailingStreak(limit=4).broken is False


def setup(*ops: Op) -> Exception | None:
    return setup_failure(History(ops=list(ops)), journey="checkout-endpoint",
                         answer_fields="url, sessionId")


def test_a_failed_set_up_call_at_the_fake_stripe_ends_the_run_as_infrastructure():
    error = setup(op(200), op(500, door="stripe", kind="stripe.pay"))
    assert isinstance(error, InfrastructureError)
    assert str(error) == "the fake Stripe API failed a set-up call (POST /p: 500): see its log"
    error = setup(op(400, door="stripe", kind="checkout", body="no such price", buyer=1))
    assert isinstance(error, InfrastructureError)
    assert str(error).startswith("buyer 2's checkout at the fake Stripe failed on the "
                                 "checkout-endpoint journey (POST /p: 400 no such price)")


@pytest.mark.parametrize("status, ref", [(400, {}), (401, {}), (404, {"expect": "sold-out"}),
                                         (422, {})])
def test_a_checkout_refused_for_what_no_retry_changes_ends_the_run(status, ref):
    error = setup(op(status, kind="checkout", body="bad payload", buyer=0, **ref))
    assert isinstance(error, TargetError)
    assert str(error) == (f"buyer 1's checkout at the target failed (POST /p: HTTP {status} "
                          "bad payload): check its checkout door, the headers and payload it "
                          "expects ({url, sessionId} answers), and its log")


@pytest.mark.parametrize("checkout", [
    op(409, kind="checkout"),                          # a contested idempotency key
    op(422, kind="checkout", expect="sold-out"),       # an expected refusal
    op(400, kind="checkout", tampered=True),           # refusing a tampered price is right
    op(500, kind="checkout"),                          # under load: a finding, not the contract
    op(kind="checkout", **TIMED_OUT),
    op(200, kind="checkout"),
])
def test_refusals_the_story_expects_and_failures_under_load_are_judged(checkout):
    assert setup(checkout) is None


def test_an_answer_the_tool_cannot_read_ends_the_run():
    # the executor's record of a 2xx whose body it could not read
    error = setup(op(200, kind="checkout", error="malformed answer: no url",
                     outcome=Outcome.FAIL))
    assert isinstance(error, TargetError) and "(POST /p: malformed answer: no url)" in str(error)
