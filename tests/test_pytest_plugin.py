"""The fake Stripe in a user's tests (``chaos.testing``), and the pytest plugin that hands
it out (``fake_stripe``) and replays a corpus as tests (``--chaos-replay DIR``).

The handle is driven with stripe-python and its deliveries are judged by a webhook
receiver that verifies them as a service would (``stripe.Webhook.construct_event``);
the plugin is judged by running pytest on a user's test file in a child process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe
from hypothesis.vendor.pretty import pretty

from chaos.errors import UsageError
from chaos.testing import ControlError, FakeStripeSession, fake_stripe_running

pytestmark = pytest.mark.e2e   # every test talks to a fake Stripe process or runs pytest

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT / "tests" / "regressions" / "one-ticket-set-per-payment-59fd4a999e.json"


def session_params(**extra: Any) -> dict[str, Any]:
    return {"mode": "payment", "success_url": "http://127.0.0.1/ok",
            "line_items": [{"quantity": 2, "price_data": {
                "currency": "usd", "unit_amount": 2500, "product_data": {"name": "GA"}}}],
            **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripeSession]:
    with fake_stripe_running(tmp_path_factory.mktemp("fake")) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeStripeSession) -> Iterator[FakeStripeSession]:
    with server.scoped() as view:
        yield view


class Receiver:
    """A webhook endpoint on loopback that verifies each delivery as stripe-python does
    and keeps the event types it accepted (400 for a delivery that fails the check)."""

    def __init__(self, secret: str) -> None:
        accepted: list[str] = []
        self.accepted = accepted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    event = stripe.Webhook.construct_event(
                        body.decode(), self.headers.get("stripe-signature", ""), secret)
                except (ValueError, stripe.SignatureVerificationError):
                    self.send_response(400)
                else:
                    accepted.append(event["type"])
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_a_session_created_with_stripe_python_and_paid_shows_its_events_and_calls(fake):
    client = fake.client()
    session = client.v1.checkout.sessions.create(params=session_params(metadata={"order": "7"}),
                                                 options={"idempotency_key": "order-7"})
    paid = fake.pay(session.id)

    assert [e["type"] for e in paid.events] == [
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
        "checkout.session.completed"]
    completed = paid.event("checkout.session.completed")["data"]["object"]
    assert (completed["id"], completed["payment_status"], completed["metadata"]) == \
        (session.id, "paid", {"order": "7"})
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert [e["id"] for e in fake.events()] == [e["id"] for e in paid.events]
    calls = fake.calls()
    assert [(c["method"], c["path"], c["idempotency_key"]) for c in calls] == [
        ("POST", "/v1/checkout/sessions", "order-7"),
        ("GET", f"/v1/checkout/sessions/{session.id}", None)]
    assert fake.api_key not in json.dumps(calls)           # the key is masked in the records
    for shown in (repr(fake), pretty(fake)):                # pytest's and Hypothesis' printing
        assert fake.api_key not in shown and fake.webhook_secret not in shown


def test_refund_dispute_expire_and_a_failed_delayed_payment_emit_stripes_events(fake):
    paid = fake.pay(fake.create_session(5000)["id"])
    session_id = paid["checkout_session"]["id"]
    refunded = fake.refund(session_id, amount=2000)
    assert [e["type"] for e in refunded.events] == ["refund.created", "charge.refunded"]
    assert refunded["charge"]["amount_refunded"] == 2000
    assert fake.dispute(paid["payment_intent"]["id"]).events[0]["type"] == \
        "charge.dispute.created"
    assert fake.expire(fake.create_session(100)["id"]).events[0]["type"] == \
        "checkout.session.expired"
    failed = fake.fail(fake.create_session(100)["id"])
    assert failed.events[-1]["type"] == "checkout.session.async_payment_failed"
    pending = fake.pay(fake.create_session(100)["id"], delayed=True)
    assert pending["checkout_session"]["payment_status"] == "unpaid"
    settled = fake.settle(pending["checkout_session"]["id"])
    assert settled.events[-1]["type"] == "checkout.session.async_payment_succeeded"


def test_payment_intents_are_paid_or_declined_by_card(fake):
    client = fake.client()
    good = client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})
    bad = client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})

    assert fake.pay(good.id)["payment_intent"]["status"] == "succeeded"
    declined = fake.fail(bad.id)
    assert "payment_intent.payment_failed" in [e["type"] for e in declined.events]
    assert client.v1.payment_intents.retrieve(bad.id).status == "requires_payment_method"


def test_an_armed_fault_reaches_the_client_and_ends_with_the_view(server):
    with server.scoped() as fake:
        rule = fake.arm("/v1/checkout/sessions", method="POST", status=503, nth=1)
        with pytest.raises(stripe.APIError):
            fake.client().v1.checkout.sessions.create(params=session_params())
        fake.client().v1.checkout.sessions.create(params=session_params())  # the 2nd call: ok
        assert [(f["id"], f["applied"]) for f in fake.faults()] == [(rule["id"], 1)]
        assert [c["outcome"] for c in fake.calls()] == ["fault", "ok"]
    with server.scoped() as after:
        assert (after.faults(), after.events(), after.calls()) == ([], [], [])


def test_delivered_events_verify_with_the_webhook_secret_and_forgeries_do_not(fake):
    paid = fake.pay(fake.create_session(5000)["id"])
    completed = paid.event("checkout.session.completed")
    with Receiver(fake.webhook_secret) as receiver:
        answers = [fake.deliver(completed, receiver.url, variant=variant).status_code
                   for variant in ("valid", "tampered", "stale", "wrong-secret", "missing")]
        everything = [r.status_code for r in fake.deliver_all(receiver.url)]
    assert answers == [200, 400, 400, 400, 400]
    assert everything == [200] * 4
    assert receiver.accepted == ["checkout.session.completed", *(e["type"] for e in paid.events)]


def test_moves_that_cannot_be_made_say_what_to_pass(fake):
    with pytest.raises(ControlError, match="pass a Checkout Session id"):
        fake.expire("pi_123")
    with pytest.raises(ControlError, match="pay it first"):
        fake.refund(fake.create_session(100)["id"])
    paid = fake.pay(fake.create_session(100)["id"])
    with pytest.raises(ControlError, match="not open"):
        fake.pay(paid["checkout_session"]["id"])
    with pytest.raises(UsageError, match="allow"):
        fake.deliver(paid.events[0], "http://example.com/webhook")
    with pytest.raises(UsageError, match="signature variant"):
        fake.deliver(paid.events[0], "http://127.0.0.1:9/webhook", variant="sloppy")


# -- the plugin, as a user's pytest sees it ----------------------------------------------------

USER_TESTS = '''
import stripe

def test_pays(fake_stripe):
    assert fake_stripe.api_key.startswith("sk_test_")
    assert fake_stripe.webhook_secret.startswith("whsec_")
    with fake_stripe.configured():
        session = stripe.checkout.Session.create(
            mode="payment", success_url="http://127.0.0.1/ok",
            line_items=[{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 900,
                                                       "product_data": {"name": "GA"}}}])
    fake_stripe.pay(session.id)
    assert len(fake_stripe.events("checkout.session.completed")) == 1
    fake_stripe.arm("/v1/**", status=500)

def test_starts_clean(fake_stripe):
    assert fake_stripe.events() == [] and fake_stripe.calls() == []
    assert fake_stripe.faults() == []
'''


def pytest_in(folder: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """pytest in a child process, in ``folder``, with its temp folders inside it."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           f"--basetemp={folder / 'basetemp'}", "-q", *args],
                          cwd=folder, capture_output=True, text=True, timeout=timeout)


def test_the_fixture_is_there_in_a_users_tests_and_each_test_starts_clean(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = pytest_in(tmp_path, "test_user.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_importing_the_plugin_imports_nothing_of_the_tool():
    """pytest loads the plugin in every run of every project that installed the tool."""
    probe = ("import sys, chaos.pytest_plugin; print(sorted(m for m in sys.modules "
             "if m.split('.')[0] in {'chaos', 'strategies', 'stripe', 'httpx', 'trio', 'asyncpg', "
             "'hypothesis', 'starlette', 'uvicorn'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "['chaos', 'chaos.pytest_plugin']"


def test_without_the_fixture_nothing_starts(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    result = pytest_in(tmp_path, "test_plain.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "basetemp").exists() or \
        not list((tmp_path / "basetemp").glob("fake-stripe*"))


def corpus(tmp_path: Path, *, broken: bool) -> Path:
    """A corpus folder with the committed no-dedup case, and (``broken``) a copy whose
    first expectation says the bug's scenario must hold: a replay must fail it."""
    folder = tmp_path / "cases"
    folder.mkdir()
    shutil.copy(CASE, folder / CASE.name)
    if broken:
        data = json.loads(CASE.read_text())
        data["expect"] = [{**data["expect"][0], "outcome": "holds"}]
        (folder / "no-dedup-wrongly-expected.json").write_text(json.dumps(data))
    return folder


def test_each_case_is_a_test_and_a_replay_that_misses_fails_with_its_text(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)    # the default: embedded PostgreSQL
    folder = corpus(tmp_path, broken=True)
    (tmp_path / "test_nothing.py").write_text("")
    result = pytest_in(tmp_path, "--chaos-replay", str(folder), "-rA", "test_nothing.py")
    out = result.stdout                  # the default 3 runs: a race lost under load is retried
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed" in out
    assert f"PASSED cases/{CASE.name}::{CASE.stem}" in out
    assert "FAILED cases/no-dedup-wrongly-expected.json::no-dedup-wrongly-expected" in out
    assert re.search(r"MISSED with no-dedup: an invariant broke in [123] of 3 runs", out), out
    assert "bought 1 ticket but has 2" in out and "Traceback" not in out, out


def test_k_selects_cases_by_file_name(tmp_path, server_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", server_url)
    folder = corpus(tmp_path, broken=True)
    result = pytest_in(tmp_path, "--chaos-replay", str(folder), "--chaos-replay-runs", "1",
                       "-k", "one-ticket-set and not wrongly", "--collect-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1/2 tests collected (1 deselected)" in result.stdout
    assert f"{CASE.name}::{CASE.stem}" in result.stdout
    assert "wrongly-expected.json::" not in result.stdout


@pytest.mark.parametrize("args, said", [
    (["--chaos-replay", "missing"], "--chaos-replay missing: no such folder"),
    (["--chaos-replay", "."], "--chaos-replay .: no case files (*.json) in it"),
    (["--chaos-replay", "cases", "--chaos-replay-runs", "0"], "--chaos-replay-runs 0: use 1..1000"),
])
def test_a_bad_replay_option_is_one_line_naming_the_fix(tmp_path, args, said):
    corpus(tmp_path, broken=False)
    result = pytest_in(tmp_path, *args)
    assert result.returncode == 4, result.stdout + result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr


def test_a_replay_that_runs_too_long_is_stopped_and_cleans_up(tmp_path, server_url, monkeypatch):
    """Stopped with SIGTERM, the replay stops its services and removes its run folder
    (the session's temp folder must be empty at the end: tests/conftest.py)."""
    monkeypatch.setenv("DATABASE_URL", server_url)
    folder = corpus(tmp_path, broken=False)
    result = pytest_in(tmp_path, "--chaos-replay", str(folder), "--chaos-replay-runs", "1000",
                       "--chaos-replay-timeout", "4")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the replay of {CASE.name} did not end within 4 s (raise --chaos-replay-timeout" \
        in result.stdout


def test_a_file_that_is_no_case_fails_its_own_test_with_one_line(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "notes.json").write_text('{"todo": "look at this"}')
    result = pytest_in(tmp_path, "--chaos-replay", str(folder), "-k", "notes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the case cannot be replayed: /" in result.stdout     # the path, no "error:" again
    assert "notes.json is not a chaos case file" in result.stdout
    assert "Traceback" not in result.stdout


CHAOS_TESTS = """
def test_search(chaos_search):
    chaos_search(examples=1)

def test_one(chaos_target):
    pass
"""


def test_the_chaos_fixtures_without_a_target_fail_with_one_line_naming_the_fix(tmp_path):
    (tmp_path / "test_chaos.py").write_text(CHAOS_TESTS)
    result = pytest_in(tmp_path, "test_chaos.py")
    assert result.returncode == 1, result.stdout + result.stderr
    # one line per test in the error sections (the short summary repeats it, cut to the
    # terminal's width or, with CI set, whole)
    sections = result.stdout.split("short test summary info")[0]
    assert sections.count("the chaos fixtures need a target: pass --chaos-config PATH, "
                          "set the chaos_config ini key, or define a chaos_config "
                          "fixture") == 2, result.stdout
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "basetemp").exists() or \
        not list((tmp_path / "basetemp").glob("fake-stripe*"))     # nothing started

    result = pytest_in(tmp_path, "test_chaos.py", "--chaos-config", "nope.toml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "payment-chaos: --config nope.toml: no such file: give the path of a chaos.toml" \
        in result.stdout
