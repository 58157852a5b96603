"""The link shop (tests/linkshop/): a webhook-only service that sells through
Payment Links.

First the shop on its own, against the fake Stripe with real signatures (it
must be right before the tool may judge it); then the tool driving it purely
through ``tests/linkshop/chaos.toml`` (the ``payment-link`` journey, a path
template, a webhook subscription), through the command line only: it passes
the correct shop and catches its duplicate-delivery bug, shrunk to two
deliveries.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.database import Database
from chaos.services import Service
from chaos.signing import sign
from tests.helpers import example_shop, run_tool
from tests.test_boxoffice import free_port

pytestmark = pytest.mark.e2e  # every test starts the shop (and most the fake Stripe)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "linkshop" / "chaos.toml"


def link_shop(server_url: str, schema: str, stripe_api_base: str, workdir: Path,
              bugs: tuple[str, ...] = (), secret: str = "whsec_linkshop_test",
              timeout: float = 30.0) -> contextlib.AbstractContextManager[str]:
    """``python -m tests.linkshop`` in its own process; yields its URL once healthy."""
    return example_shop("tests.linkshop", server_url=server_url, schema=schema,
                        stripe_api_base=stripe_api_base, workdir=workdir, timeout=timeout,
                        env={"LINKSHOP_WEBHOOK_SECRET": secret, "LINKSHOP_BUGS": ",".join(bugs)})


# --------------------------------------------------------------------------------------
# the shop on its own


class Shop:
    """The link shop and the fake Stripe, with the moves a test makes: list a ticket
    type (as its admin does), buy through the link, deliver what Stripe sends."""

    def __init__(self, url: str, stripe: Service, db: Database,
                 secret: str = "whsec_linkshop_test") -> None:
        self.url, self.stripe, self.db, self.secret = url, stripe, db, secret
        self.http = httpx.Client(timeout=15, trust_env=False)

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.post(self.stripe.url + path, json=body or {})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def listing(self, *, price: int = 2500, capacity: int = 10) -> tuple[int, int, str]:
        """An event with one ticket type on sale through a Payment Link:
        (event id, ticket type id, link id)."""
        code = f"t-{secrets.token_hex(3)}"
        made = self.control("/_chaos/catalogue", {
            "product": {"id": f"prod_{code.replace('-', '_')}", "name": "Stalls"},
            "unit_amount": price, "payment_link": True})
        [event] = self.db.fetch("insert into events (code, title) values ($1, 'T') returning id",
                                code)
        [kind] = self.db.fetch(
            "insert into ticket_types (code, event_id, name, price_cents, capacity, "
            "stripe_product_id) values ($1, $2, 'Stalls', $3, $4, $5) returning id",
            code, event["id"], price, capacity, made["product"]["id"])
        return event["id"], kind["id"], made["payment_link"]["id"]

    def buy(self, link: str, quantity: int = 2, outcome: str = "paid",
            email: str = "ana@example.test") -> dict[str, dict[str, Any]]:
        """Buy through the link and pay: Stripe's events by type."""
        session = self.control(f"/_chaos/payment_links/{link}/checkout", {"quantity": quantity})
        paid = self.control(f"/_chaos/checkout/sessions/{session['id']}/pay", {
            "outcome": outcome, "customer_details": {"email": email, "name": "Ana"}})
        return {event["type"]: event for event in paid["events"]}

    def deliver(self, event_id: int, event: dict[str, Any],
                variant: str = "valid") -> httpx.Response:
        signed = sign(json.dumps(event), self.secret, now=int(time.time()), variant=variant)
        return self.http.post(f"{self.url}/{event_id}/stripe/webhook/", content=signed.body,
                              headers=signed.headers)

    def tickets(self, kind: int) -> int:
        [row] = self.db.fetch("select count(*)::int as n from tickets where ticket_type_id = $1 "
                              "and status = 'valid'", kind)
        return int(row["n"])


@pytest.fixture
def shop_for(server_url: str, schema: str, fake_stripe: Service, tmp_path: Path):
    """``shop_for(*bugs)``: the link shop (with those bugs) on this test's fresh schema."""
    stack = contextlib.ExitStack()

    def start(*bugs: str) -> Shop:
        url = stack.enter_context(link_shop(server_url, schema, fake_stripe.url, tmp_path, bugs))
        db = Database(server_url, schema=schema)
        stack.callback(db.close)
        shop = Shop(url, fake_stripe, db)
        stack.callback(shop.http.close)
        return shop

    with stack:
        yield start


def test_a_link_purchase_is_fulfilled_once_for_the_buyer_stripe_names(shop_for):
    shop = shop_for()
    event, kind, link = shop.listing()
    completed = shop.buy(link, quantity=3, email="ana@example.test")["checkout.session.completed"]
    assert shop.deliver(event, completed).status_code == 200
    assert shop.tickets(kind) == 3
    [order] = shop.db.fetch("select email, name, stripe_session from orders")
    assert (order["email"], order["name"]) == ("ana@example.test", "Ana")
    assert order["stripe_session"] == completed["data"]["object"]["id"]
    # duplicates, in a row and at the same time: 200, and still one set
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: shop.deliver(event, completed), range(6)))
    assert {a.status_code for a in answers} == {200}
    assert shop.tickets(kind) == 3


def test_it_answers_400_to_events_it_is_not_subscribed_to_and_to_forgeries(shop_for):
    shop = shop_for()
    event, kind, link = shop.listing()
    events = shop.buy(link)
    answer = shop.deliver(event, events["charge.succeeded"])
    assert answer.status_code == 400 and "unknown event" in answer.text
    # its Elements form's event, for a Checkout Session's PaymentIntent: acknowledged, no sale
    answer = shop.deliver(event, events["payment_intent.succeeded"])
    assert answer.status_code == 200 and "not an Elements purchase" in answer.text
    for variant in ("tampered", "wrong-secret", "stale", "missing"):
        assert shop.deliver(event, events["checkout.session.completed"], variant) \
            .status_code == 400
    assert shop.tickets(kind) == 0
    assert shop.deliver(event + 10_000, events["checkout.session.completed"]).status_code == 404


def test_a_delayed_payment_is_fulfilled_when_it_succeeds(shop_for):
    shop = shop_for()
    event, kind, link = shop.listing()
    events = shop.buy(link, quantity=2, outcome="async_succeeded")
    # the completion's snapshot says unpaid, but the session is paid now: the shop asks Stripe
    assert events["checkout.session.completed"]["data"]["object"]["payment_status"] == "unpaid"
    assert shop.deliver(event, events["checkout.session.completed"]).status_code == 200
    assert shop.deliver(event, events["checkout.session.async_payment_succeeded"]) \
        .status_code == 200
    assert shop.tickets(kind) == 2


def test_a_sold_out_purchase_is_refunded_at_stripe_not_oversold(shop_for):
    shop = shop_for()
    event, kind, link = shop.listing(capacity=2)
    first = shop.buy(link, quantity=2)["checkout.session.completed"]
    second = shop.buy(link, quantity=1)["checkout.session.completed"]
    assert shop.deliver(event, first).status_code == 200
    assert shop.deliver(event, second).status_code == 200
    assert shop.deliver(event, second).status_code == 200  # the redelivery refunds nothing more
    assert shop.tickets(kind) == 2
    intent = second["data"]["object"]["payment_intent"]
    refunds = shop.http.get(shop.stripe.url + "/_chaos/objects/refund").json()["data"]
    assert [r["payment_intent"] for r in refunds] == [intent]
    # a reader's cursor: nothing after the last one, and an unknown cursor is refused
    after = shop.http.get(shop.stripe.url + "/_chaos/objects/refund",
                          params={"after": refunds[-1]["id"]})
    assert after.status_code == 200 and after.json()["data"] == []
    unknown = shop.http.get(shop.stripe.url + "/_chaos/objects/refund", params={"after": "re_x"})
    assert unknown.status_code == 400 and "after" in unknown.text


def test_with_no_dedup_a_duplicate_delivery_fulfils_twice(shop_for):
    shop = shop_for("no-dedup")
    event, kind, link = shop.listing()
    completed = shop.buy(link, quantity=2)["checkout.session.completed"]
    assert shop.deliver(event, completed).status_code == 200
    assert shop.deliver(event, completed).status_code == 200
    assert shop.tickets(kind) == 4


def test_bad_arguments_are_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "tests.linkshop", "--bug", "nope"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--bug" in result.stderr


# --------------------------------------------------------------------------------------
# the tool, driven through tests/linkshop/chaos.toml only


def run_against_link_shop(server_url: str, schema: str, tmp_path: Path, monkeypatch,
                          bugs: tuple[str, ...] = (), examples: int = 30,
                          config: Path = CONFIG, sets: tuple[str, ...] = (),
                          replay: bool = False
                          ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Start the link shop (its Stripe client aimed at the port the tool's fake Stripe
    will take), then ``python -m chaos --config tests/linkshop/chaos.toml`` (with
    ``--set`` of each of ``sets``); with ``replay``, then ``python -m chaos replay`` of
    every case it saved (report["replays"])."""
    secret = "whsec_" + secrets.token_hex(16)
    monkeypatch.setenv("LINKSHOP_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("LINKSHOP_DATABASE_URL", server_url)
    stripe_port = free_port()
    written = tmp_path / "report.json"
    with link_shop(server_url, schema, f"http://127.0.0.1:{stripe_port}", tmp_path, bugs,
                   secret=secret) as url:
        options = ["--config", str(config), "--set", f"target.base_url={url}",
                   "--set", f"stripe.port={stripe_port}", "--set", f"database.schema={schema}",
                   *(f"--set={item}" for item in sets)]
        result = run_tool(*options, "--examples", str(examples), "--seed", "1",
                          "--report", str(written), "--corpus", str(tmp_path / "cases"),
                          cwd=tmp_path)
        assert written.exists(), f"no report (exit {result.returncode}): {result.stderr[-800:]}"
        report = json.loads(written.read_text())
        if replay:
            cases = [f["replay"].split()[-1] for f in report["failures"] if f.get("replay")]
            report["replays"] = [run_tool("replay", case, *options, cwd=tmp_path)
                                 for case in cases]
    return result, report


def test_the_tool_passes_the_correct_link_shop(server_url: str, schema: str, tmp_path: Path,
                                               monkeypatch):
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["verdict"] == "pass" and report["failures"] == []
    assert report["examples"] >= 30
    assert report["invariants"]["tickets-go-to-the-buyer-stripe-names"] == "pass"
    # it really played the stories through the links: tickets for the buyers Stripe named,
    # every delivery it sent was of a subscribed type, and none met a 400
    db = Database(server_url, schema=schema)
    try:
        [tickets] = db.fetch("select count(*)::int as n from tickets")
        emails = {r["email"] for r in db.fetch("select distinct email from orders")}
        [listed] = db.fetch("select count(*)::int as n from ticket_types "
                            "where stripe_product_id like 'prod_chaos_%'")
    finally:
        db.close()
    assert tickets["n"] > 0 and listed["n"] > 0
    assert emails and all(e.startswith("buyer") for e in emails)
    assert report["http"]["requests"] > 30
    assert report["thresholds"]["http-error-rate"]["verdict"] == "pass"


def test_the_tool_catches_no_dedup_in_the_link_shop_in_two_deliveries(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch,
                                           ("no-dedup",), replay=True)
    assert result.returncode == 1, result.stdout + result.stderr
    [caught] = [f for f in report["failures"]
                if f["invariant"] == "one-ticket-set-per-payment" and f["status"] == "FAILED"]
    assert caught["requests"] == 2, caught["steps"]
    delivered = [s for s in caught["steps"] if "deliver" in s]
    assert len(delivered) == 2 and all("checkout.session.completed" in s for s in delivered)
    # the case it saved replays through the same config, on the same journey: it fails again
    assert report["replays"]
    for replayed in report["replays"]:
        assert replayed.returncode == 1, replayed.stdout + replayed.stderr
        assert "FAILED" in replayed.stdout


def test_without_the_subscription_the_shops_400s_to_other_types_are_errors(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    """The same correct shop, its endpoint described as subscribed to every type: the
    tool sends payment_intent.succeeded and the rest, the shop answers 400 unknown
    event, and the error-rate threshold (not an invariant) fails the run."""
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch,
                                           examples=10, sets=("target.webhook.events=[]",))
    assert result.returncode == 1, result.stdout + result.stderr
    assert report["failures"] == []
    assert report["thresholds"]["http-error-rate"]["verdict"] == "fail"


def test_a_browser_checkout_journey_with_a_buyer_fixture_drives_the_same_shop(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    """The same shop, its buyers' sessions created by the tool (``stripe-session``) from a
    template that sells the listed Price and carries the cart a per-buyer fixture made;
    the shop keeps the cart as the order's client reference."""
    config = tmp_path / "browser.toml"
    text = CONFIG.read_text().replace('journey = "payment-link"', 'journey = "stripe-session"')
    text = text.replace('payment_link = { metadata = { event_id = "{{event_id}}" } }', (
        'session = { line_items = [{ price = "{{price_id}}", quantity = "{{quantity}}" }], '
        'metadata = { event_id = "{{event_id}}" }, client_reference_id = "{{cart}}", '
        'customer_email = "{{email}}" }'))
    text = text.replace("[fixtures]\n", "[fixtures]\n"
                        "buyer = \"select 'cart-' || $1 || '-' || $3 as cart\"\n")
    text += """
[[invariants]]
name = "order-keeps-the-buyers-cart"
sql = '''
select id, client_reference from orders
 where event_id = $1
   and client_reference is distinct from
       ('cart-' || $1 || '-' || substr(email, 6, strpos(email, '@') - 6))
'''
message = "an order does not carry the cart its buyer's fixture made"
"""
    assert "stripe-session" in text and "buyer = " in text
    config.write_text(text)
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch,
                                           examples=20, config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["verdict"] == "pass" and report["failures"] == []
    assert report["invariants"]["order-keeps-the-buyers-cart"] == "pass"
    db = Database(server_url, schema=schema)
    try:
        carts = [r["client_reference"] for r in db.fetch("select client_reference from orders")]
    finally:
        db.close()
    assert carts and all(c and c.startswith("cart-") for c in carts)


# --------------------------------------------------------------------------------------
# the same shop's Elements card form, driven through tests/linkshop/elements.toml only

ELEMENTS = ROOT / "tests" / "linkshop" / "elements.toml"


def test_the_tool_passes_the_correct_shop_on_the_payment_intent_journey(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    """Bare PaymentIntents the tool creates and confirms as the buyer: the shop fulfils
    each on payment_intent.succeeded, once, and the tool judges it by the intents."""
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch,
                                           config=ELEMENTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["verdict"] == "pass" and report["failures"] == []
    assert report["invariants"]["one-ticket-set-per-payment"] == "pass"
    assert report["invariants"]["tickets-go-to-the-buyer-the-intent-names"] == "pass"
    db = Database(server_url, schema=schema)
    try:
        orders = db.fetch("select stripe_session, payment_intent, email from orders")
        [tickets] = db.fetch("select count(*)::int as n from tickets")
    finally:
        db.close()
    # it really paid by PaymentIntent: orders keyed by pi_ ids, for the buyers' emails
    assert orders and tickets["n"] > 0
    assert all(o["stripe_session"] == o["payment_intent"] and o["payment_intent"].startswith("pi_")
               for o in orders)
    assert all(o["email"].startswith("buyer") for o in orders)
    assert report["thresholds"]["http-error-rate"]["verdict"] == "pass"


def test_the_tool_catches_no_dedup_on_the_payment_intent_journey_in_two_deliveries(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    result, report = run_against_link_shop(server_url, schema, tmp_path, monkeypatch,
                                           ("no-dedup",), config=ELEMENTS)
    assert result.returncode == 1, result.stdout + result.stderr
    [caught] = [f for f in report["failures"]
                if f["invariant"] == "one-ticket-set-per-payment" and f["status"] == "FAILED"]
    assert caught["requests"] == 2, caught["steps"]
    delivered = [s for s in caught["steps"] if "deliver" in s]
    assert len(delivered) == 2 and all("payment_intent.succeeded" in s for s in delivered)
