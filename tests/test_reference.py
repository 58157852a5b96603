"""The reference service against real PostgreSQL: correct by default, and
each switchable bug visibly breaks its scenario."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from chaos.database import Database
from chaos.services import Service, running
from chaos.signing import sign

SECRET = "whsec_reference_test_secret"


@pytest.fixture
def reference_factory(server_url: str, schema: str, tmp_path: Path):
    def start(*bugs: str):
        args = ["--database-url", server_url, "--schema", schema]
        for bug in bugs:
            args += ["--bug", bug]
        return running("reference", args, workdir=tmp_path,
                       env={"CHAOS_WEBHOOK_SECRET": SECRET})
    return start


@pytest.fixture
def reference(reference_factory) -> Iterator[Service]:
    with reference_factory() as service:
        yield service


def paid_event(fake_stripe: Service, db: Database, *, quantity: int, name: str) -> dict:
    """A buyer checks out and pays at the fake Stripe; the completion event."""
    db.execute("insert into events (id, name) values ($1, $1)", name)
    db.execute("insert into ticket_types (id, event_id, name, price_cents, capacity) "
               "values ($1, $2, 'GA', 2500, 100)", f"{name}-tt1", name)
    session = httpx.post(f"{fake_stripe.url}/_chaos/checkout/sessions", json={
        "amount_total": 2500 * quantity, "customer_email": "a@b.test",
        "metadata": {"event_id": name, "ticket_type_id": f"{name}-tt1",
                     "quantity": str(quantity)},
    }).json()
    events = httpx.post(f"{fake_stripe.url}/_chaos/checkout/sessions/{session['id']}/pay").json()
    return next(e for e in events["events"] if e["type"] == "checkout.session.completed")


def deliver(url: str, event: dict, *, secret: str = SECRET, copies: int = 1) -> list[int]:
    """Deliver ``copies`` of ``event`` at once; their status codes."""
    async def main():
        statuses: list[int] = []
        async with httpx.AsyncClient() as http:
            async def one():
                signed = sign(json.dumps(event), secret, now=int(time.time()))
                r = await http.post(f"{url}/functions/v1/stripe-webhook", content=signed.body,
                                    headers=signed.headers)
                statuses.append(r.status_code)
            async with trio.open_nursery() as nursery:
                for _ in range(copies):
                    nursery.start_soon(one)
        return statuses
    return trio.run(main)


def tickets(db: Database, event_name: str) -> int:
    return db.fetch("select count(*) as n from tickets t join orders o on o.id = t.order_id "
                    "where o.event_id = $1", event_name)[0]["n"]


def test_one_delivery_writes_an_order_and_a_ticket_per_unit(reference, fake_stripe, db):
    event = paid_event(fake_stripe, db, quantity=3, name="ev-one")
    assert deliver(reference.url, event) == [200]
    assert tickets(db, "ev-one") == 3
    orders = db.fetch("select payment_intent_id, amount_cents, status from orders "
                      "where event_id = 'ev-one'")
    assert orders == [{"payment_intent_id": event["data"]["object"]["payment_intent"],
                       "amount_cents": 7500, "status": "paid"}]


def test_concurrent_and_sequential_duplicates_are_harmless(reference, fake_stripe, db):
    event = paid_event(fake_stripe, db, quantity=2, name="ev-dup")
    assert deliver(reference.url, event, copies=10) == [200] * 10
    assert deliver(reference.url, event, copies=1) == [200]
    assert tickets(db, "ev-dup") == 2


def test_a_wrong_signature_answers_4xx_and_writes_nothing(reference, fake_stripe, db):
    event = paid_event(fake_stripe, db, quantity=1, name="ev-forged")
    assert deliver(reference.url, event, secret="whsec_forger") == [400]
    assert tickets(db, "ev-forged") == 0


def test_no_dedup_bug_issues_a_ticket_set_per_delivery(reference_factory, fake_stripe, db):
    with reference_factory("no-dedup") as buggy:
        event = paid_event(fake_stripe, db, quantity=2, name="ev-bug")
        assert deliver(buggy.url, event, copies=3) == [200] * 3
    assert tickets(db, "ev-bug") == 6


def test_metrics_report_the_peak_in_flight(reference, fake_stripe, db):
    event = paid_event(fake_stripe, db, quantity=1, name="ev-metrics")
    httpx.post(f"{reference.url}/_chaos/metrics/reset")
    deliver(reference.url, event, copies=20)
    metrics = httpx.get(f"{reference.url}/_chaos/metrics").json()
    assert metrics["requests"] == 20
    assert 1 <= metrics["peak_in_flight"] <= 20
