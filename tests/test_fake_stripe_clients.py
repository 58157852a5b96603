"""The fake Stripe's PaymentIntents, charges and ``expand[]`` as three real
client libraries see them: the project's stripe-python, stripe-python 7.x
(what pretix pins) and stripe-node.

Each drives what a re-fetching shop does: create and confirm a PaymentIntent,
``GET /v1/payment_intents/{id}?expand[]=latest_charge``, ``GET
/v1/charges/{id}?expand[]=dispute&expand[]=refunds&expand[]=payment_intent
&expand[]=payment_intent.latest_charge``, a refund, the charge again, and an
expansion Stripe forbids. stripe-python 7.x is installed from PyPI into
``build/stripe7-venv`` on first use (kept as a cache); skipped only when PyPI
cannot be reached. stripe-node comes from ``tests/test_fake_stripe_node.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import fake_stripe_helpers, test_fake_stripe_node
from tests.fake_stripe_helpers import KEY, Fake

fake = fake_stripe_helpers.fake  # the fixtures, for this module
stripe_server = fake_stripe_helpers.stripe_server
stripe_node = test_fake_stripe_node.stripe_node
pytestmark = pytest.mark.e2e  # each test runs a client in its own process

ROOT = Path(__file__).resolve().parent.parent
FLOW = Path(__file__).resolve().parent / "fake_stripe_client_flow.py"
STRIPE7 = ROOT / "build" / "stripe7-venv"
FORBIDDEN = "This property cannot be expanded (metadata)."
#: What pip prints when it cannot reach the package index at all.
OFFLINE = ("Network is unreachable", "Temporary failure in name resolution",
           "Failed to establish a new connection", "No matching distribution found for stripe")


@pytest.fixture(scope="session")
def stripe7_python() -> Path:
    """An interpreter with stripe-python 7.x: ``build/stripe7-venv``, made once."""
    python = STRIPE7 / "bin" / "python"
    check = [str(python), "-c", "import stripe, sys; sys.exit(not stripe.VERSION.startswith('7.'))"]
    if python.exists() and subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(STRIPE7)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "stripe>=7,<8"], capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        if any(sign in install.stderr for sign in OFFLINE):
            pytest.skip(f"PyPI is not reachable, cannot install stripe-python 7.x: "
                        f"{install.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"pip install stripe>=7,<8 failed: {install.stderr[-2000:]}")
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    return python


def run_flow(python: Path | str, fake: Fake, tag: str) -> dict[str, Any]:
    result = subprocess.run([str(python), str(FLOW), fake.url, KEY, tag],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def assert_refetch_flow(out: dict[str, Any], fake: Fake) -> None:
    """What each client saw, and that the fake's own records agree."""
    intent, charge = out["intent"], out["charge"]
    assert out["account"]["object"] == "account" and out["account"]["id"].startswith("acct_")
    assert out["account"]["charges_enabled"] is True
    assert intent["status"] == "requires_payment_method"
    assert intent["client_secret"].startswith(f"{intent['id']}_secret_")
    assert out["confirmed"]["status"] == "succeeded"
    assert out["confirmed"]["charge_status"] == "succeeded"
    assert out["fetched_charge"] == out["confirmed"]["charge"] == charge["id"]
    assert (charge["dispute"], charge["source"], charge["refunds_total"]) == (None, None, 0)
    assert charge["payment_intent"] == intent["id"] and charge["nested_charge"] == charge["id"]
    assert charge["last4"] == "4242" and charge["balance_transaction"].startswith("txn_")
    assert out["refund"]["amount"] == 1000 and out["refund"]["status"] == "succeeded"
    assert out["after"] == {"amount_refunded": 1000, "refunded": False, "refunds_total": 1,
                            "refund_ids": [out["refund"]["id"]]}
    forbidden = out["forbidden"]
    assert forbidden["status"] == 400 and forbidden["param"] == "expand[0]"
    assert forbidden["message"] == FORBIDDEN
    stored = fake.control.objects("charge")
    [mine] = [c for c in stored if c["id"] == charge["id"]]
    assert (mine["amount_refunded"], mine["payment_intent"]) == (1000, intent["id"])


def test_current_stripe_python_drives_a_refetching_shop(fake: Fake):
    out = run_flow(sys.executable, fake, "py-current")
    assert not out["version"].startswith("7.")
    assert_refetch_flow(out, fake)
    assert out["forbidden"]["class"] == "InvalidRequestError"


def test_stripe_python_7_as_pretix_pins_it(fake: Fake, stripe7_python: Path):
    out = run_flow(stripe7_python, fake, "py-7")
    assert out["version"].startswith("7.")
    assert_refetch_flow(out, fake)
    assert out["forbidden"]["class"] == "InvalidRequestError"


NODE_FLOW = r"""
const Stripe = require('stripe');
const [port, key] = process.argv.slice(2);
const stripe = new Stripe(key, {host: '127.0.0.1', port: Number(port), protocol: 'http',
                                maxNetworkRetries: 0, timeout: 30000, telemetry: false});
const PRETIX = ['dispute', 'refunds', 'payment_intent', 'payment_intent.latest_charge'];
(async () => {
  const account = await stripe.accounts.retrieve();  // GET /v1/account
  const intent = await stripe.paymentIntents.create(
    {amount: 4200, currency: 'eur', payment_method_types: ['card'],
     metadata: {order: 'node-1', event: '1'}}, {idempotencyKey: 'node-flow-create'});
  const confirmed = await stripe.paymentIntents.confirm(intent.id,
    {payment_method: 'pm_card_visa', expand: ['latest_charge']});
  const fetched = await stripe.paymentIntents.retrieve(intent.id, {expand: ['latest_charge']});
  const charge = await stripe.charges.retrieve(fetched.latest_charge.id, {expand: PRETIX});
  const refund = await stripe.refunds.create({charge: charge.id, amount: 1000});
  const after = await stripe.charges.retrieve(charge.id, {expand: PRETIX});
  let forbidden = null;
  try {
    await stripe.charges.retrieve(charge.id, {expand: ['metadata']});
  } catch (e) {
    // the message Stripe sent (stripe-node 23 prefixes e.message with the request id)
    forbidden = {class: e.type, status: e.statusCode, message: e.raw && e.raw.message, param: e.param,
                 type: e.raw && e.raw.type};
  }
  console.log(JSON.stringify({
    version: JSON.parse(require('fs').readFileSync(
      require('path').join(__dirname, 'node_modules/stripe/package.json'))).version,
    account: {id: account.id, object: account.object, charges_enabled: account.charges_enabled},
    intent: {id: intent.id, status: intent.status, client_secret: intent.client_secret},
    confirmed: {status: confirmed.status, charge: confirmed.latest_charge.id,
                charge_status: confirmed.latest_charge.status},
    fetched_charge: fetched.latest_charge.id,
    charge: {id: charge.id, dispute: charge.dispute, source: charge.source,
             refunds_total: charge.refunds.total_count, payment_intent: charge.payment_intent.id,
             nested_charge: charge.payment_intent.latest_charge.id,
             last4: charge.payment_method_details.card.last4,
             balance_transaction: charge.balance_transaction, metadata: charge.metadata},
    refund: {id: refund.id, amount: refund.amount, status: refund.status},
    after: {amount_refunded: after.amount_refunded, refunded: after.refunded,
            refunds_total: after.refunds.total_count, refund_ids: after.refunds.data.map(r => r.id)},
    forbidden,
  }));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
"""


def test_stripe_node_drives_a_refetching_shop(fake: Fake, stripe_node: Path):
    (stripe_node / "refetch.js").write_text(NODE_FLOW)
    result = subprocess.run(["node", str(stripe_node / "refetch.js"), str(urlsplit(fake.url).port),
                             KEY], cwd=stripe_node, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert_refetch_flow(out, fake)
    assert out["forbidden"]["class"] == "StripeInvalidRequestError"
    assert out["forbidden"]["type"] == "invalid_request_error"
