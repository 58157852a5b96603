"""The fake Stripe's catalogue (Products, Prices, Payment Links) as stripe-python
and stripe-node see it, and a buyer purchasing through a Payment Link as a webhook-only shop
then reads it: the session with ``line_items.data.price.product`` expanded and
``customer_details`` filled in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import stripe

from chaos.fake_stripe import catalogue
from chaos.fake_stripe.control import customer_details
from chaos.fake_stripe.state import FakeStripe
from tests import fake_stripe_helpers, test_fake_stripe_node
from tests.fake_stripe_helpers import KEY, Fake

pytestmark = pytest.mark.e2e  # one fake Stripe process for the module

fake = fake_stripe_helpers.fake
stripe_server = fake_stripe_helpers.stripe_server
stripe_node = test_fake_stripe_node.stripe_node  # stripe-node from npm, once per session


def test_a_product_takes_a_chosen_id_once_and_its_price_is_listed_by_product(fake: Fake):
    sc = fake.client()
    product = sc.v1.products.create(params={"id": "prod_gala_stalls", "name": "Gala: stalls",
                                            "metadata": {"tier": "stalls"}})
    assert (product.id, product.name, product.active) == ("prod_gala_stalls", "Gala: stalls", True)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sc.v1.products.create(params={"id": "prod_gala_stalls", "name": "again"})
    assert refused.value.code == "resource_already_exists"

    price = sc.v1.prices.create(params={"product": product.id, "unit_amount": 4200,
                                        "currency": "eur"})
    assert (price.product, price.unit_amount, price.currency, price.type) == \
        (product.id, 4200, "eur", "one_time")
    assert [p.id for p in sc.v1.prices.list(params={"product": product.id}).data] == [price.id]
    inline = sc.v1.prices.create(params={"product_data": {"name": "Gala: balcony"},
                                         "unit_amount": 1500, "currency": "eur"})
    assert sc.v1.products.retrieve(inline.product).name == "Gala: balcony"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        sc.v1.prices.create(params={"product": "prod_nope", "unit_amount": 1, "currency": "eur"})
    assert unknown.value.code == "resource_missing"


def test_active_is_updated_and_filters_the_lists(fake: Fake):
    sc = fake.client()
    product = sc.v1.products.create(params={"name": "Matinee"})
    price = sc.v1.prices.create(params={"product": product.id, "unit_amount": 900,
                                        "currency": "usd"})
    assert sc.v1.products.update(product.id, params={"active": False}).active is False
    assert sc.v1.prices.update(price.id, params={"active": False}).active is False
    assert product.id not in [p.id for p in sc.v1.products.list(
        params={"active": True, "limit": 100}).data]
    assert product.id in [p.id for p in sc.v1.products.list(
        params={"active": False, "limit": 100}).data]
    assert sc.v1.products.list(params={"ids": [product.id]}).data[0].active is False
    assert sc.v1.prices.retrieve(price.id).active is False
    # an inactive price cannot be sold through a new link
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 1}]})


def test_a_payment_link_is_created_retrieved_deactivated_and_lists_its_line_items(fake: Fake):
    sc = fake.client()
    product = sc.v1.products.create(params={"id": "prod_link_test_1", "name": "Late show"})
    price = sc.v1.prices.create(params={"product": product.id, "unit_amount": 2500,
                                        "currency": "usd"})
    link = sc.v1.payment_links.create(params={
        "line_items": [{"price": price.id, "quantity": 1,
                        "adjustable_quantity": {"enabled": True, "maximum": 10}}],
        "metadata": {"show": "late"}})
    assert link.id.startswith("plink_") and link.active and link.url
    assert link.metadata.to_dict() == {"show": "late"}
    [item] = sc.v1.payment_links.line_items.list(link.id).data
    assert (item.price.id, item.quantity, item.price.product) == (price.id, 1, product.id)
    got = sc.v1.payment_links.retrieve(
        link.id, params={"expand": ["line_items", "line_items.data.price.product"]})
    assert got.line_items.data[0].price.product.name == "Late show"
    assert sc.v1.payment_links.update(link.id, params={"active": False}).active is False
    # a deactivated link sells nothing
    answer = fake.control.http.post(f"/_chaos/payment_links/{link.id}/checkout",
                                    json={"quantity": 1})
    assert answer.status_code == 400 and "no longer active" in answer.text


def test_a_purchase_through_a_link_reads_as_a_webhook_only_shop_needs_it(fake: Fake):
    """The shop's admin lists a ticket type (product id chosen in advance); a buyer
    buys 3 through the link; the shop's webhook retrieves the session with
    line_items.data.price.product expanded and reads customer_details."""
    listing = fake.control.post("/_chaos/catalogue", {
        "product": {"id": "prod_chaos_linktest_tt1", "name": "Stalls"}, "unit_amount": 2500,
        "payment_link": True, "payment_link_metadata": {"event_id": "chaos-linktest"}})
    assert listing["product"]["id"] == "prod_chaos_linktest_tt1"
    assert listing["product"]["default_price"] == listing["price"]["id"]
    link = listing["payment_link"]
    session = fake.control.post(f"/_chaos/payment_links/{link['id']}/checkout", {"quantity": 3})
    assert (session["payment_link"], session["amount_total"], session["status"]) == \
        (link["id"], 7500, "open")
    assert session["metadata"] == {"event_id": "chaos-linktest"}  # copied from the link
    paid = fake.control.post(f"/_chaos/checkout/sessions/{session['id']}/pay", {
        "customer_details": {"email": "ana@example.test", "name": "Ana"}})
    completed = next(e for e in paid["events"] if e["type"] == "checkout.session.completed")
    assert completed["data"]["object"]["customer_details"]["email"] == "ana@example.test"

    sc = fake.client()
    got = sc.v1.checkout.sessions.retrieve(
        session["id"], params={"expand": ["line_items", "line_items.data.price.product"]})
    assert got.customer_details.email == "ana@example.test" and got.customer_details.name == "Ana"
    [item] = got.line_items.data
    assert (item.price.product.id, item.quantity) == ("prod_chaos_linktest_tt1", 3)
    intent = sc.v1.payment_intents.retrieve(paid["payment_intent"]["id"])
    assert intent.metadata.to_dict() == {"event_id": "chaos-linktest"}


def test_every_completed_session_has_customer_details(fake: Fake):
    plain = fake.control.checkout(1000)  # no email given at creation
    assert plain["customer_details"] is None
    paid = fake.control.pay(plain["id"])
    details = paid["checkout_session"]["customer_details"]
    assert details["email"] and details["name"]
    with_email = fake.control.checkout(1000, customer_email="b@example.test")
    paid = fake.control.pay(with_email["id"])
    assert paid["checkout_session"]["customer_details"]["email"] == "b@example.test"


def test_a_browser_checkout_sells_catalogue_prices(fake: Fake):
    listing = fake.control.post("/_chaos/catalogue", {"product": {"name": "Balcony"},
                                                      "unit_amount": 1800})
    session = fake.control.post("/_chaos/checkout/sessions", {
        "line_items": [{"price": listing["price"]["id"], "quantity": 2}],
        "metadata": {"order": "o-1"}, "customer_email": "c@example.test"})
    assert session["amount_total"] == 3600
    sc = fake.client()
    [item] = sc.v1.checkout.sessions.line_items.list(
        session["id"], params={"expand": ["data.price.product"]}).data
    assert item.price.product.id == listing["product"]["id"]
    assert item.price.product.name == "Balcony"


def _declared(cls: type) -> set[str]:
    """The fields stripe-python declares on a resource class (its type annotations)."""
    return {k for k in cls.__annotations__ if k[0].islower()}


def test_catalogue_objects_carry_every_field_stripe_python_declares():
    state = FakeStripe(prefix="shape")
    product = catalogue.create_product(state, name="Stalls", product_id="prod_shape")
    price = catalogue.create_price(state, product_id=product["id"], unit_amount=100,
                                   currency="usd")
    link = catalogue.create_payment_link(state, lines=[(price, 1, None)])
    # on Stripe these come only when expanded (or on a deleted object)
    only_when_expanded_or_deleted = {"line_items", "currency_options", "tiers", "deleted"}
    for cls, obj in ((stripe.Product, product), (stripe.Price, price),
                     (stripe.PaymentLink, link)):
        missing = _declared(cls) - set(obj) - only_when_expanded_or_deleted
        assert not missing, (cls.__name__, sorted(missing))
    details = customer_details({"id": "cs_1", "customer_email": None}, email="a@b.test")
    assert _declared(stripe.checkout.Session.CustomerDetails) <= set(details)


NODE_SCRIPT = r"""
const Stripe = require('stripe');
const [port, key, productId] = process.argv.slice(2);
const stripe = new Stripe(key, {host: '127.0.0.1', port: Number(port), protocol: 'http',
                                maxNetworkRetries: 0, timeout: 30000, telemetry: false});
(async () => {
  const product = await stripe.products.create({id: productId, name: 'Node stalls'});
  const price = await stripe.prices.create({product: product.id, unit_amount: 3100,
                                            currency: 'usd'});
  const link = await stripe.paymentLinks.create({
    line_items: [{price: price.id, quantity: 1,
                  adjustable_quantity: {enabled: true, maximum: 5}}],
    metadata: {shop: 'node'}});
  const items = await stripe.paymentLinks.listLineItems(link.id);
  const expanded = await stripe.paymentLinks.retrieve(link.id,
    {expand: ['line_items', 'line_items.data.price.product']});
  const off = await stripe.paymentLinks.update(link.id, {active: false});
  const hidden = await stripe.products.update(product.id, {active: false});
  console.log(JSON.stringify({product, price, link, items, expanded, off, hidden}));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
"""


def test_stripe_node_lists_a_ticket_type_and_sells_it_through_a_link(fake: Fake,
                                                                    stripe_node: Path):
    script = stripe_node / "catalogue.js"
    script.write_text(NODE_SCRIPT)
    result = subprocess.run(["node", str(script), str(urlsplit(fake.url).port), KEY,
                             "prod_node_stalls"], cwd=stripe_node, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["product"]["id"] == "prod_node_stalls"
    assert out["price"]["product"] == "prod_node_stalls"
    assert out["link"]["metadata"] == {"shop": "node"} and out["link"]["active"] is True
    assert [i["price"]["id"] for i in out["items"]["data"]] == [out["price"]["id"]]
    assert out["expanded"]["line_items"]["data"][0]["price"]["product"]["name"] == "Node stalls"
    assert out["off"]["active"] is False and out["hidden"]["active"] is False


PYTHON7_SCRIPT = r"""
import json, sys
import stripe
url, key, product_id, session_id = sys.argv[1:]
stripe.api_base, stripe.api_key, stripe.max_network_retries = url, key, 0
product = stripe.Product.create(id=product_id, name="Old client stalls")
price = stripe.Price.create(product=product.id, unit_amount=1900, currency="usd")
link = stripe.PaymentLink.create(line_items=[{"price": price.id, "quantity": 1}],
                                 metadata={"shop": "py7"})
items = stripe.PaymentLink.list_line_items(link.id)
off = stripe.PaymentLink.modify(link.id, active=False)
listed = stripe.Price.list(product=product.id)
session = stripe.checkout.Session.retrieve(
    session_id, expand=["line_items", "line_items.data.price.product"])
print(json.dumps({"version": stripe.VERSION, "product": product.id, "price": price.product,
                  "items": [i.price.id for i in items.data], "price_id": price.id,
                  "off": off.active, "listed": [p.id for p in listed.data],
                  "email": session.customer_details.email,
                  "bought": session.line_items.data[0].price.product.id}))
"""


@pytest.fixture(scope="session")
def stripe_python7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with stripe-python 7.x (the major pretix pins), installed from PyPI."""
    where = tmp_path_factory.mktemp("stripe-python7")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "stripe>=7,<8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install stripe 7 failed: {result.stderr[-2000:]}"
    (where / "check.py").write_text(PYTHON7_SCRIPT)
    return where


def test_stripe_python_7_lists_sells_and_reads_back_a_link_purchase(fake: Fake,
                                                                    stripe_python7: Path):
    listing = fake.control.post("/_chaos/catalogue", {"product": {"name": "Seen by 7.x"},
                                                      "unit_amount": 700, "payment_link": True})
    session = fake.control.post(f"/_chaos/payment_links/{listing['payment_link']['id']}/checkout",
                                {"quantity": 2})
    fake.control.post(f"/_chaos/checkout/sessions/{session['id']}/pay",
                      {"customer_details": {"email": "old@example.test"}})
    result = subprocess.run([str(stripe_python7 / "venv" / "bin" / "python"),
                             str(stripe_python7 / "check.py"), fake.url, KEY, "prod_py7_stalls",
                             session["id"]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["version"].startswith("7.")
    assert out["product"] == out["price"] == "prod_py7_stalls"
    assert out["items"] == [out["price_id"]] and out["listed"] == [out["price_id"]]
    assert out["off"] is False
    assert (out["email"], out["bought"]) == ("old@example.test", listing["product"]["id"])
