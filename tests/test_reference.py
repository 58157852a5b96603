"""The reference service, correct version, against real PostgreSQL and the
real fake Stripe: its checkout door, its webhook door, and its measurements.

One service runs for the module; each test uses events of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe

from chaos.database import Database
from chaos.services import running
from tests.reference_shop import (
    ANON_KEY,
    Shop,
    StripeOutage,
    fire,
    open_shop,
    stripe_event,
)


@pytest.fixture(scope="module")
def module_schema(server_url: str) -> Iterator[str]:
    name = f"chaos_test_{secrets.token_hex(4)}"
    admin = Database(server_url)
    admin.execute(f'create schema "{name}"')
    try:
        yield name
    finally:
        admin.execute(f'drop schema if exists "{name}" cascade')
        admin.close()


@pytest.fixture(scope="module")
def stripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running("fake-stripe", [], workdir=tmp_path_factory.mktemp("stripe")) as service:
        yield service.url


@pytest.fixture(scope="module")
def shop(server_url: str, module_schema: str, stripe_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with open_shop(server_url=server_url, schema=module_schema, stripe_url=stripe_url,
                   workdir=tmp_path_factory.mktemp("reference")) as opened:
        yield opened


# ---------------------------------------------------------------- checkout door

def test_a_checkout_charges_the_database_price_and_holds_the_units(shop: Shop):
    event = shop.event(price=2500, capacity=10)
    answer = shop.checkout(event, quantity=3, key="k-hold")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"url", "sessionId"} and body["url"]
    session = shop.stripe_session(body["sessionId"])
    assert session["amount_total"] == 7500
    assert session["metadata"]["event_id"] == event
    assert shop.ticket_type(event) == {"ticket_type": f"{event}-tt1", "capacity": 10,
                                       "tickets": 0, "reserved": 3}
    [order] = shop.db.fetch("select status, amount_cents, idempotency_key from orders "
                            "where event_id = $1", event)
    assert order == {"status": "pending", "amount_cents": 7500, "idempotency_key": "k-hold"}


@pytest.mark.parametrize("change, status, words", [
    ({"headers": {}}, 401, "API key"),
    ({"headers": {"apikey": "anon_wrong", "authorization": "Bearer anon_wrong"}}, 401, "API key"),
    ({"headers": {"apikey": ANON_KEY}}, 401, "API key"),
    ({"body": b"not json"}, 400, "not JSON"),
    ({"body": [1, 2]}, 400, "JSON object"),
    ({"body": {"eventId": "x", "tickets": [], "customerEmail": "a@b.c"}}, 400, "tickets"),
    ({"quantity": 0}, 400, "quantity is 0"),
    ({"quantity": 21}, 400, "quantity is 21"),
    ({"email": "nobody"}, 400, "not an email"),
    ({"event": "no-such-event"}, 404, "no event"),
    ({"price": 1}, 422, "the price of"),
    ({"total": 1}, 422, "total is 1"),
    ({"key": "x" * 300}, 400, "Idempotency-Key"),
])
def test_bad_checkouts_get_one_line_that_names_the_fix_and_hold_nothing(shop: Shop, change,
                                                                         status, words):
    event = shop.event()
    change = dict(change)
    target_event = change.pop("event", event)
    answer = shop.checkout(target_event, **change)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert shop.ticket_type(event)["reserved"] == 0
    assert shop.db.fetch("select id from orders where event_id = $1", event) == []


def test_an_unknown_ticket_type_is_refused(shop: Shop):
    event = shop.event()
    body = {"eventId": event, "tickets": [{"ticketTypeId": "nope", "quantity": 1}],
            "customerEmail": "a@b.c"}
    answer = shop.checkout(event, body=body)
    assert answer.status_code == 422 and "no ticket type 'nope'" in answer.json()["error"]


def test_concurrent_buyers_never_take_more_than_the_capacity(shop: Shop):
    event = shop.event(capacity=3)
    answers = fire([shop.checkout_request(event, email=f"b{i}@chaos.test") for i in range(10)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [409] * 7
    assert all("sold out" in a.json()["error"] for a in answers if a.status_code == 409)
    assert shop.ticket_type(event)["reserved"] == 3


def test_a_double_click_gets_the_same_session_and_one_hold(shop: Shop):
    event = shop.event()
    answers = fire([shop.checkout_request(event, quantity=2, key="double") for _ in range(5)])
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.json()["sessionId"] for a in answers}) == 1
    again = shop.checkout(event, quantity=2, key="double")
    assert again.json() == answers[0].json()
    assert shop.ticket_type(event)["reserved"] == 2
    assert len(shop.db.fetch("select id from orders where event_id = $1", event)) == 1


def test_a_key_reused_with_another_body_is_refused(shop: Shop):
    event = shop.event()
    assert shop.checkout(event, quantity=1, key="reused").status_code == 200
    answer = shop.checkout(event, quantity=2, key="reused")
    assert answer.status_code == 422
    assert "different request" in answer.json()["error"]
    assert shop.ticket_type(event)["reserved"] == 1


def test_a_fresh_key_is_a_new_checkout(shop: Shop):
    event = shop.event()
    first = shop.checkout(event, key="first").json()["sessionId"]
    second = shop.checkout(event, key="second").json()["sessionId"]
    assert first != second
    assert shop.ticket_type(event)["reserved"] == 2


def test_a_stripe_failure_gives_the_hold_back_and_the_same_key_resumes(
        server_url: str, schema: str, fake_stripe, tmp_path: Path):
    with StripeOutage(fake_stripe.url) as stripe, \
            open_shop(server_url=server_url, schema=schema, stripe_url=stripe.url,
                      workdir=tmp_path) as flaky:
        event = flaky.event(capacity=1)
        stripe.fail("POST", "/v1/checkout/sessions")
        failed = flaky.checkout(event, key="retry-me")
        assert failed.status_code == 502
        assert "no tickets are held" in failed.json()["error"]
        assert flaky.ticket_type(event)["reserved"] == 0
        # the unit went back: someone else may buy it meanwhile, then it is gone
        stripe.heal()
        resumed = flaky.checkout(event, key="retry-me")
        assert resumed.status_code == 200, resumed.text
        assert flaky.ticket_type(event)["reserved"] == 1
        [order] = flaky.db.fetch("select status, stripe_session_id from orders "
                                 "where event_id = $1", event)
        assert order == {"status": "pending", "stripe_session_id": resumed.json()["sessionId"]}
        # the service passed its own Idempotency-Key to Stripe on both attempts
        assert [c[2] for c in stripe.calls if c[0] == "POST"] == [503, 200]


# ---------------------------------------------------------------- webhook door

def test_one_completion_fulfils_the_order_once(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event, quantity=3)
    assert shop.deliver(buyer.completed) == [200]
    assert shop.tickets(buyer) == 3
    assert shop.payments(event)[buyer.session_id] == {
        "checkout_session": buyer.session_id, "payment_intent": buyer.payment_intent,
        "orders": 1, "tickets": 3, "voided": 0}
    order = shop.order(buyer)
    assert (order["status"], order["amount_paid_cents"]) == ("paid", 7500)
    assert shop.ticket_type(event)["reserved"] == 3


def test_concurrent_and_sequential_duplicates_are_acknowledged_and_harmless(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event, quantity=2)
    assert shop.deliver(buyer.completed, copies=10) == [200] * 10
    assert shop.deliver(buyer.completed) == [200]
    assert shop.tickets(buyer) == 2


@pytest.mark.parametrize("how", ["wrong secret", "stale", "tampered", "unsigned", "not json"])
def test_a_forged_delivery_answers_4xx_and_writes_nothing(shop: Shop, how):
    event = shop.event()
    buyer = shop.buy(event)
    request = shop.delivery(buyer.completed, secret="whsec_forger" if how == "wrong secret"
                            else shop.target.webhook_secret, age=400 if how == "stale" else 0)
    signature = {"stripe-signature": request.headers["stripe-signature"]}
    if how == "tampered":
        request = httpx.Request("POST", request.url, headers=signature,
                                content=request.content.replace(b'"paid"', b'"PAID"'))
    elif how == "unsigned":
        request = httpx.Request("POST", request.url, content=request.content)
    elif how == "not json":
        request = httpx.Request("POST", request.url, headers=signature, content=b"{")
    [answer] = fire([request])
    assert 400 <= answer.status_code < 500, answer.text
    assert shop.tickets(buyer) == 0
    assert shop.db.fetch("select event_id from processed_webhook_events where event_id = $1",
                         buyer.completed["id"]) == []
    # ... and the real delivery still works afterwards
    assert shop.deliver(buyer.completed) == [200]
    assert shop.tickets(buyer) == 1


def test_a_rotated_secret_delivery_is_accepted(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event)
    payload, now = json.dumps(buyer.completed), int(time.time())
    old = stripe.WebhookSignature.generate_signature_header(payload, "whsec_old", timestamp=now)
    new = stripe.WebhookSignature.generate_signature_header(payload, shop.target.webhook_secret,
                                                            timestamp=now)
    header = old + "," + new.split(",", 1)[1]   # t=...,v1=<old secret>,v1=<current secret>
    [answer] = fire([httpx.Request("POST", shop.url + shop.target.webhook_path, content=payload,
                                   headers={"stripe-signature": header})])
    assert answer.status_code == 200 and shop.tickets(buyer) == 1


def test_unknown_event_types_are_acknowledged_and_change_nothing(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event)
    before = shop.db.fetch("select count(*) as n from processed_webhook_events")
    dispute = stripe_event("charge.dispute.created", {"id": "dp_1", "object": "dispute",
                                                       "payment_intent": buyer.payment_intent})
    assert shop.deliver(dispute, copies=2) == [200, 200]
    assert shop.db.fetch("select count(*) as n from processed_webhook_events") == before
    assert shop.tickets(buyer) == 0 and shop.order(buyer)["status"] == "pending"


def _refund_orders() -> list[tuple[str, ...]]:
    kinds = ("completed", "payment_intent", "refund")
    return list(itertools.permutations(kinds))


@pytest.mark.parametrize("with_metadata", [True, False], ids=["metadata", "no-metadata"])
def test_a_refund_voids_the_tickets_in_any_order(shop: Shop, with_metadata):
    event = shop.event(capacity=10)
    for order in _refund_orders():
        buyer = shop.buy(event, quantity=2)
        events = {"completed": buyer.completed,
                  "payment_intent": buyer.events["payment_intent.succeeded"],
                  "refund": buyer.refund(with_metadata=with_metadata)}
        for kind in order:
            assert shop.deliver(events[kind], copies=2) == [200, 200], order
        assert shop.tickets(buyer) == 0, order
        assert shop.order(buyer)["status"] == "refunded", order
    assert shop.ticket_type(event) == {"ticket_type": f"{event}-tt1", "capacity": 10,
                                       "tickets": 0, "reserved": 0}


def test_payment_intent_first_then_completion_fulfils_once(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event, quantity=2)
    assert shop.deliver(buyer.events["payment_intent.succeeded"]) == [200]
    assert shop.order(buyer)["payment_intent_id"] == buyer.payment_intent
    assert shop.tickets(buyer) == 0
    assert shop.deliver(buyer.completed) == [200]
    assert shop.tickets(buyer) == 2


def _session_event(shop: Shop, event_type: str, session_id: str, **changes) -> dict:
    return stripe_event(event_type, {**shop.stripe_session(session_id), **changes})


def test_an_unpaid_completion_waits_and_an_async_success_fulfils(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event, quantity=2, pay=False)
    unpaid = _session_event(shop, "checkout.session.completed", buyer.session_id,
                            status="complete", payment_status="unpaid")
    assert shop.deliver(unpaid) == [200]
    assert shop.tickets(buyer) == 0 and shop.order(buyer)["status"] == "awaiting_payment"
    shop.pay(buyer)   # the bank debit clears
    succeeded = _session_event(shop, "checkout.session.async_payment_succeeded",
                               buyer.session_id)
    assert shop.deliver(succeeded, copies=2) == [200, 200]
    assert shop.tickets(buyer) == 2 and shop.order(buyer)["status"] == "paid"


def test_an_async_failure_and_an_expiry_give_the_hold_back_once(shop: Shop):
    event = shop.event(capacity=5)
    failing = shop.buy(event, quantity=2, pay=False)
    unpaid = _session_event(shop, "checkout.session.completed", failing.session_id,
                            status="complete", payment_status="unpaid")
    failed = _session_event(shop, "checkout.session.async_payment_failed", failing.session_id,
                            status="complete", payment_status="unpaid")
    abandoned = shop.buy(event, quantity=1, pay=False)
    expired = _session_event(shop, "checkout.session.expired", abandoned.session_id,
                             status="expired")
    assert shop.ticket_type(event)["reserved"] == 3
    assert shop.deliver(unpaid) == [200]
    assert shop.deliver(failed, copies=3) == [200] * 3
    assert shop.deliver(expired, copies=3) == [200] * 3
    assert shop.deliver(unpaid) == [200]   # a late duplicate of the completion
    assert shop.ticket_type(event) == {"ticket_type": f"{event}-tt1", "capacity": 5,
                                       "tickets": 0, "reserved": 0}
    assert shop.order(failing)["status"] == "payment_failed"
    assert shop.order(abandoned)["status"] == "expired"


def test_a_stripe_failure_during_fulfilment_answers_502_and_the_redelivery_fulfils(
        server_url: str, schema: str, fake_stripe, tmp_path: Path):
    with StripeOutage(fake_stripe.url) as stripe, \
            open_shop(server_url=server_url, schema=schema, stripe_url=stripe.url,
                      workdir=tmp_path) as flaky:
        buyer = flaky.buy(flaky.event(), quantity=2)
        stripe.fail("GET", "/v1/checkout/sessions/")
        assert flaky.deliver(buyer.completed) == [502]
        assert flaky.tickets(buyer) == 0
        stripe.heal()
        assert flaky.deliver(buyer.completed) == [200]
        assert flaky.tickets(buyer) == 2


# ---------------------------------------------------------------- measurements

def test_metrics_report_the_peak_in_flight(shop: Shop):
    event = shop.event()
    buyer = shop.buy(event)
    httpx.post(f"{shop.url}/_chaos/metrics/reset", trust_env=False)
    shop.deliver(buyer.completed, copies=20)
    metrics = httpx.get(f"{shop.url}/_chaos/metrics", trust_env=False).json()
    assert metrics["requests"] == 20
    assert 1 <= metrics["peak_in_flight"] <= 20


def test_a_hung_stripe_call_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch):
    from chaos.reference import service as service_module

    monkeypatch.setattr(service_module, "STRIPE_DEADLINE", 0.2)
    bounded = service_module.Service(
        bugs=frozenset(), webhook_secret="whsec_x", anon_key="anon_x",
        stripe_api_base="http://127.0.0.1:9", stripe_api_key="sk_test_x", schema="s",
        database_url="postgresql://127.0.0.1:9/x")

    async def hang() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(service_module.StripeUnavailable, match="did not answer .* within 0.2 s"):
        asyncio.run(bounded.call_stripe("creating the Checkout Session", hang))


def test_a_target_that_refuses_checkouts_is_an_error_not_a_pass(shop: Shop, stripe_url: str):
    from chaos.errors import TargetError
    from chaos.run import Runner
    from chaos.target import Target
    from strategies import busy_night

    runner = Runner(target=Target(base_url=shop.url, webhook_secret=shop.target.webhook_secret,
                                  anon_key="anon_not_the_key"),
                    stripe_url=stripe_url, db=shop.db, concurrency=5, request_timeout=10,
                    example_timeout=30)
    with pytest.raises(TargetError, match=r"buyer [12]'s checkout at the target failed "
                                          r"\(POST /functions/v1/create-checkout-session: HTTP 401"):
        runner.run_example(busy_night(2))
