"""Idempotency-Key and faults, as the target's stripe-python client lives them.

The evidence is what the client raised, what the fake Stripe recorded, and
how many objects exist afterwards (did the endpoint run or not?).
"""

from __future__ import annotations

import random
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import stripe
import trio
from stripe._encode import _api_encode

from chaos.fake_stripe.faults import FaultPlan, FaultSpecError, glob_regex
from chaos.transport import LoopbackTransport
from tests import fake_stripe_helpers
from tests.fake_stripe_helpers import KEY, Fake, session_params

fake = fake_stripe_helpers.fake  # the fixtures, for this module
stripe_server = fake_stripe_helpers.stripe_server


def order() -> str:
    """A fresh order id: sessions are counted per order through their metadata."""
    return f"ord-{secrets.token_hex(4)}"


def sessions_for(fake: Fake, order_id: str) -> list[dict[str, Any]]:
    return fake.control.objects("checkout.session", order_id=order_id)


def create(sc: stripe.StripeClient, order_id: str, key: str | None = None, **extra: Any):
    options: Any = {"idempotency_key": key} if key else {}
    return sc.v1.checkout.sessions.create(
        params=session_params(metadata={"order_id": order_id}, **extra), options=options)


def wait_for_record(fake: Fake, since: int, predicate, what: str, timeout: float = 30.0):
    """Poll the records until one matches: waiting for a state, not for a time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in fake.control.records(since):
            if predicate(record):
                return record
        time.sleep(0.02)
    raise AssertionError(f"no record {what} within {timeout} s: {fake.control.records(since)}")


# -- Idempotency-Key -----------------------------------------------------------------------------


def test_same_key_same_params_replays_the_first_answer(fake: Fake):
    sc, order_id = fake.client(), order()
    first = create(sc, order_id, key=f"k-{order_id}")
    again = create(sc, order_id, key=f"k-{order_id}")
    assert again.id == first.id
    assert again.last_response.headers["idempotent-replayed"] == "true"
    assert again.last_response.headers["original-request"] == first.last_response.request_id
    assert [s["id"] for s in sessions_for(fake, order_id)] == [first.id]


def test_same_key_with_other_params_or_endpoint_is_an_idempotency_error(fake: Fake):
    sc, order_id = fake.client(), order()
    key = f"k-{order_id}"
    create(sc, order_id, key=key)
    with pytest.raises(stripe.IdempotencyError) as other_params:
        create(sc, order_id, key=key, customer_email="someone@else.test")
    assert other_params.value.http_status == 400
    assert "same parameters" in str(other_params.value)
    with pytest.raises(stripe.IdempotencyError) as other_endpoint:
        sc.v1.refunds.create(params={"charge": "ch_x"}, options={"idempotency_key": key})
    assert "same endpoint" in str(other_endpoint.value)
    assert len(sessions_for(fake, order_id)) == 1


def test_execution_errors_are_replayed_validation_errors_are_not(fake: Fake):
    sc, order_id = fake.client(), order()
    session = create(sc, order_id)
    fake.control.pay(session.id)
    # executing began and failed: the error is saved and replayed
    for replay in (False, True):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            sc.v1.checkout.sessions.expire(session.id, options={"idempotency_key": f"x-{order_id}"})
        assert caught.value.code == "checkout_session_not_open"
        assert (caught.value.headers.get("idempotent-replayed") == "true") is replay
    # validation failed: nothing saved, so the same key runs the corrected request
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.checkout.sessions.create(params={"mode": "payment"},
                                       options={"idempotency_key": f"v-{order_id}"})
    fixed = create(sc, order_id, key=f"v-{order_id}")
    assert "idempotent-replayed" not in fixed.last_response.headers
    assert len(sessions_for(fake, order_id)) == 2


def raw_post(url: str, path: str, params: dict[str, Any], key: str) -> socket.socket:
    """Send a POST as stripe-python would, and keep the connection open."""
    body = urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]").encode()
    where = urlsplit(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=30)
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                 b"Idempotency-Key: " + key.encode() + b"\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


def test_a_request_while_the_first_is_in_flight_is_a_conflict(fake: Fake):
    sc, order_id = fake.client(), order()
    key = f"k-{order_id}"
    fake.control.arm(method="POST", path="/v1/checkout/sessions", kind="hang", max_seconds=60,
                     nth=1)
    since = fake.control.last_seq()
    first = raw_post(fake.url, "/v1/checkout/sessions",
                     session_params(metadata={"order_id": order_id}), key)
    try:
        wait_for_record(fake, since, lambda r: r["idempotency_key"] == key, "for the first call")
        with pytest.raises(stripe.APIError) as caught:
            create(sc, order_id, key=key)
        # stripe-python maps a 409 to APIError (and would retry it, had it retries left)
        assert caught.value.http_status == 409
        assert caught.value.json_body["error"]["code"] == "idempotency_key_in_use"
    finally:
        first.close()  # the client gives up: the hung call did nothing and frees the key
    wait_for_record(fake, since, lambda r: r["idempotency_key"] == key
                    and r["fault"] == "hang" and r["outcome"] == "fault", "for the hang to end")
    retried = create(sc, order_id, key=key)
    assert "idempotent-replayed" not in retried.last_response.headers
    assert [s["id"] for s in sessions_for(fake, order_id)] == [retried.id]


def test_a_saved_500_is_replayed_and_an_unsaved_one_is_not(fake: Fake):
    sc, order_id = fake.client(), order()
    fake.control.arm(method="POST", path="/v1/checkout/sessions", kind="error", status=500,
                     saved=True, nth=1)
    for replay in (False, True):
        with pytest.raises(stripe.APIError) as caught:
            create(sc, order_id, key=f"saved-{order_id}")
        assert caught.value.http_status == 500
        assert (caught.value.headers.get("idempotent-replayed") == "true") is replay
    assert sessions_for(fake, order_id) == []
    create(sc, order_id, key=f"fresh-{order_id}")

    fake.control.arm(method="POST", path="/v1/checkout/sessions", kind="error", status=503,
                     times=1)
    with pytest.raises(stripe.APIError) as unsaved:
        create(sc, order_id, key=f"unsaved-{order_id}")
    assert unsaved.value.http_status == 503
    retried = create(sc, order_id, key=f"unsaved-{order_id}")
    assert "idempotent-replayed" not in retried.last_response.headers
    assert len(sessions_for(fake, order_id)) == 2


# -- every fault kind, through stripe-python -----------------------------------------------------


def test_error_and_rate_limit_faults_do_no_work(fake: Fake):
    sc, order_id = fake.client(), order()
    fake.control.arm(path="/v1/checkout/sessions", kind="rate-limit", retry_after=7, nth=1)
    with pytest.raises(stripe.RateLimitError) as limited:
        create(sc, order_id)
    assert limited.value.http_status == 429 and limited.value.headers["retry-after"] == "7"
    fake.control.arm(path="/v1/checkout/sessions", kind="error", status=502, nth=1)
    with pytest.raises(stripe.APIError) as failed:
        create(sc, order_id)
    assert failed.value.http_status == 502
    assert sessions_for(fake, order_id) == []


def test_latency_delays_the_answer_and_the_work_still_happens(fake: Fake):
    sc, order_id = fake.client(), order()
    fake.control.arm(path="/v1/checkout/sessions/*", method="GET", kind="latency", seconds=0.3)
    session = create(sc, order_id)
    since = fake.control.last_seq()
    assert sc.v1.checkout.sessions.retrieve(session.id).id == session.id
    (record,) = fake.control.records(since)
    assert (record["fault"], record["status"], record["executed"]) == ("latency", 200, True)
    assert record["ended"] - record["started"] >= 0.3, record  # a lower bound: load only adds to it


def test_hang_holds_until_the_client_gives_up_and_does_nothing(fake: Fake):
    order_id = order()
    fake.control.arm(path="/v1/checkout/sessions", kind="hang", max_seconds=60)
    since = fake.control.last_seq()
    with pytest.raises(stripe.APIConnectionError):
        create(fake.client(timeout=0.5), order_id)
    record = wait_for_record(fake, since, lambda r: r["outcome"] == "fault", "for the hang")
    assert (record["fault"], record["status"], record["executed"]) == ("hang", None, False)
    assert sessions_for(fake, order_id) == []


def test_hang_is_bounded_by_max_seconds(fake: Fake):
    fake.control.arm(path="/v1/events", kind="hang", max_seconds=0.2)
    with pytest.raises(stripe.APIConnectionError):
        fake.client(timeout=60).v1.events.list()  # the server drops it, not the client


def test_reset_really_resets_the_connection(fake: Fake):
    sc, order_id = fake.client(), order()
    fake.control.arm(path="/v1/checkout/sessions", kind="reset", times=2)
    with pytest.raises(stripe.APIConnectionError):
        create(sc, order_id)
    sock = raw_post(fake.url, "/v1/checkout/sessions", session_params(), f"k-{order_id}")
    with sock, pytest.raises(ConnectionResetError):
        sock.recv(1024)  # RST, not an orderly close (which would read b"")
    assert sessions_for(fake, order_id) == []


def test_lost_answer_does_the_work_and_only_the_same_key_recovers_it(fake: Fake):
    sc, order_id = fake.client(), order()
    key = f"k-{order_id}"
    fake.control.arm(path="/v1/checkout/sessions", kind="lost-answer", nth=1)
    since = fake.control.last_seq()
    with pytest.raises(stripe.APIConnectionError):
        create(sc, order_id, key=key)
    (made,) = sessions_for(fake, order_id)  # the work was done
    (record,) = fake.control.records(since)
    assert (record["fault"], record["status"], record["executed"], record["object_id"]) == \
        ("lost-answer", None, True, made["id"])
    assert create(sc, order_id, key=key).id == made["id"]  # a retry with the key recovers it
    create(sc, order_id)  # a retry with a fresh key makes a second session: the classic bug
    assert len(sessions_for(fake, order_id)) == 2


def test_a_lost_answer_reads_as_an_empty_close(fake: Fake):
    fake.control.arm(path="/v1/checkout/sessions", kind="lost-answer", nth=1)
    sock = raw_post(fake.url, "/v1/checkout/sessions", session_params(), f"k-{order()}")
    with sock:
        assert sock.recv(1024) == b""


# -- arming: selection and validation ------------------------------------------------------------


def test_faults_apply_per_endpoint_and_count_only_matching_calls(fake: Fake):
    sc = fake.client()
    session = create(sc, order())
    rule = fake.control.arm(method="GET", path="/v1/checkout/sessions/*", kind="error",
                            status=503, nth=2)
    sc.v1.events.list()  # another endpoint: not counted
    sc.v1.checkout.sessions.line_items.list(session.id)  # "*" stays within a segment
    sc.v1.checkout.sessions.retrieve(session.id)  # 1st match
    with pytest.raises(stripe.APIError):
        sc.v1.checkout.sessions.retrieve(session.id)  # 2nd match: faulted
    sc.v1.checkout.sessions.retrieve(session.id)
    (listed,) = fake.control.get("/_chaos/faults")["data"]
    assert listed == {**listed, "id": rule["id"], "seen": 3, "applied": 1, "spent": True}
    assert fake.control.http.delete(f"/_chaos/faults/{rule['id']}").json() == {"cleared": 1}
    assert fake.control.http.delete(f"/_chaos/faults/{rule['id']}").status_code == 404


def test_nth_times_probability_and_glob_selection():
    def pattern(spec: dict[str, Any], calls: int = 40, path: str = "/v1/events") -> list[bool]:
        plan = FaultPlan()
        plan.arm(spec)
        return [plan.pick("GET", path) is not None for _ in range(calls)]

    base = {"path": "/v1/**", "kind": "error"}
    assert pattern({**base, "nth": 3}, 5) == [False, False, True, False, False]
    assert pattern({**base, "times": 2}, 4) == [True, True, False, False]
    assert pattern(base, 3) == [True, True, True]
    drawn = random.Random(7)
    expected = [drawn.random() < 0.25 for _ in range(40)]
    assert pattern({**base, "probability": 0.25, "seed": 7}) == expected
    assert pattern({**base, "probability": 0.25, "seed": 7}) == expected  # same seed, same calls
    assert 0 < sum(expected) < 40
    assert glob_regex("/v1/checkout/sessions/*").fullmatch("/v1/checkout/sessions/cs_1")
    assert not glob_regex("/v1/checkout/sessions/*").fullmatch("/v1/checkout/sessions/cs_1/expire")
    assert glob_regex("/v1/**").fullmatch("/v1/checkout/sessions/cs_1/expire")


def test_the_first_armed_rule_wins_and_every_rule_counts_the_call():
    plan = FaultPlan()
    first = plan.arm({"path": "/v1/events", "kind": "latency", "seconds": 1, "times": 1})
    second = plan.arm({"path": "/v1/**", "kind": "error", "nth": 2})
    assert plan.pick("GET", "/v1/events") is first
    assert plan.pick("GET", "/v1/events") is second
    assert (first.seen, first.applied, second.seen, second.applied) == (2, 1, 2, 1)


@pytest.mark.parametrize("spec, message", [
    ({"path": "/v1/events", "kind": "explode"}, "kind 'explode' is not one of"),
    ({"path": "/_chaos/faults", "kind": "error"}, "must be a glob starting with /v1/"),
    ({"path": "/v1/events", "kind": "error", "status": 404}, "status 404 must be in 500..599"),
    ({"path": "/v1/events", "kind": "error", "nth": 1, "times": 2}, "at most one of"),
    ({"path": "/v1/events", "kind": "error", "probability": 0.5}, "needs an integer seed"),
    ({"path": "/v1/events", "kind": "error", "probability": 2, "seed": 1}, "in (0, 1]"),
    ({"path": "/v1/events", "kind": "latency"}, "needs seconds"),
    ({"path": "/v1/events", "kind": "hang", "max_seconds": 10_000}, "0..300"),
    ({"path": "/v1/events", "kind": "reset", "seconds": 1}, "unknown field(s) seconds"),
    ({"path": "/v1/events", "kind": "error", "nth": 0}, "nth 0 must be in 1.."),
    ({"path": "/v1/events", "kind": "error", "method": "P O"}, "must be an HTTP method"),
])
def test_rules_that_cannot_be_armed_are_refused_with_the_fix(fake: Fake, spec, message):
    with pytest.raises(FaultSpecError, match=None) as caught:
        FaultPlan().arm(spec)
    assert message in str(caught.value)
    response = fake.control.http.post("/_chaos/faults", json=spec)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_a_double_click_storm_with_one_key_makes_one_session(fake: Fake):
    """20 identical creates with one key at once, the first one slow: each answer is the
    session (executed or replayed) or a 409 conflict, and exactly one session exists."""
    order_id = order()
    fake.control.arm(method="POST", path="/v1/checkout/sessions", kind="latency", seconds=0.5,
                     nth=1)
    body = urlencode(list(_api_encode(session_params(metadata={"order_id": order_id}))))
    headers = {"authorization": f"Bearer {KEY}", "idempotency-key": f"k-{order_id}",
               "content-type": "application/x-www-form-urlencoded"}
    answers: list[httpx.Response] = []

    async def storm() -> None:
        async with httpx.AsyncClient(transport=LoopbackTransport(), timeout=30.0) as http:
            async def click() -> None:
                answers.append(await http.post(f"{fake.url}/v1/checkout/sessions", content=body,
                                               headers=headers))
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(click)

    trio.run(storm)
    (session,) = sessions_for(fake, order_id)
    assert {a.status_code for a in answers} <= {200, 409}
    assert {a.json()["id"] for a in answers if a.status_code == 200} == {session["id"]}
    assert all(a.json()["error"]["code"] == "idempotency_key_in_use"
               for a in answers if a.status_code == 409)
    executed = [r for r in fake.control.records() if r["idempotency_key"] == f"k-{order_id}"
                and r["executed"]]
    assert len(executed) == 1
