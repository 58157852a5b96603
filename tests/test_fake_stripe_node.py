"""The fake Stripe API as stripe-node sees it: a Node target's own client,
pointed at it with ``host``/``port``/``protocol``.

The npm package ``stripe`` is installed from the registry into a temporary
directory by this module, once per test session. Skipped only when ``node``
or ``npm`` is not on the machine; a failed install is a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import fake_stripe_helpers
from tests.fake_stripe_helpers import KEY, Fake

pytestmark = pytest.mark.e2e   # installs stripe-node from npm

fake = fake_stripe_helpers.fake  # the fixtures, for this module
stripe_server = fake_stripe_helpers.stripe_server

SCRIPT = r"""
const Stripe = require('stripe');
const [port, key] = process.argv.slice(2);
const stripe = new Stripe(key, {host: '127.0.0.1', port: Number(port), protocol: 'http',
                                maxNetworkRetries: 0, timeout: 30000, telemetry: false});
(async () => {
  const session = await stripe.checkout.sessions.create({
    mode: 'payment', success_url: 'http://127.0.0.1/ok',
    line_items: [{quantity: 2, price_data: {currency: 'usd', unit_amount: 2500,
                                            product_data: {name: 'GA'}}}],
    metadata: {order_id: 'node-1'},
  }, {idempotencyKey: 'node-key-1'});
  const again = await stripe.checkout.sessions.retrieve(session.id,
    {expand: ['line_items', 'line_items.data.price.product']});
  const replay = await stripe.checkout.sessions.create({
    mode: 'payment', success_url: 'http://127.0.0.1/ok',
    line_items: [{quantity: 2, price_data: {currency: 'usd', unit_amount: 2500,
                                            product_data: {name: 'GA'}}}],
    metadata: {order_id: 'node-1'},
  }, {idempotencyKey: 'node-key-1'});
  let error = null;
  try {
    await stripe.checkout.sessions.create({mode: 'payment'});
  } catch (e) {
    error = {type: e.type, statusCode: e.statusCode, param: e.param, code: e.code};
  }
  console.log(JSON.stringify({session, again, replay_id: replay.id, error}));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def stripe_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the npm package ``stripe`` installed from the registry."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not both installed: cannot run stripe-node")
    where = tmp_path_factory.mktemp("stripe-node")
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save",
                             "--prefix", str(where), "stripe"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"npm install stripe failed: {result.stderr[-2000:]}"
    (where / "check.js").write_text(SCRIPT)
    return where


def test_stripe_node_creates_and_retrieves_a_checkout_session(fake: Fake, stripe_node: Path):
    port = str(urlsplit(fake.url).port)
    result = subprocess.run(["node", str(stripe_node / "check.js"), port, KEY],
                            cwd=stripe_node, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    session, again = out["session"], out["again"]
    assert session["id"].startswith("cs_test_") and session["amount_total"] == 5000
    assert session["metadata"] == {"order_id": "node-1"}
    assert again["id"] == session["id"] and again["status"] == "open"
    item = again["line_items"]["data"][0]
    assert (item["quantity"], item["price"]["unit_amount"], item["price"]["product"]["name"]) == \
        (2, 2500, "GA")
    assert out["replay_id"] == session["id"]
    assert out["error"] == {"type": "StripeInvalidRequestError", "statusCode": 400,
                            "param": "line_items", "code": "parameter_missing"}
    version = json.loads((stripe_node / "node_modules/stripe/package.json").read_text())["version"]
    (created, *_) = [r for r in fake.control.records()
                     if r["idempotency_key"] == "node-key-1" and r["outcome"] == "ok"]
    assert created["object_id"] == session["id"], f"stripe-node {version}"
