"""The box office (tests/boxoffice/): a second, independent service.

First the service on its own, against the fake Stripe with real signatures
(it must be right before the tool may judge it); then the tool driving it
purely through ``tests/boxoffice/chaos.toml``, through the command line only:
it passes the correct service and catches each of its two bugs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
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

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "boxoffice" / "chaos.toml"
KEY = "box-office-test-key"


def box_office(server_url: str, schema: str, stripe_api_base: str, workdir: Path,
               bugs: tuple[str, ...] = (), secret: str = "whsec_boxoffice_test",
               timeout: float = 30.0, metadata_key: str = "event_id",
               signatures: str = "verify") -> contextlib.AbstractContextManager[str]:
    """``python -m tests.boxoffice`` in its own process; yields its URL once healthy."""
    return example_shop("tests.boxoffice", server_url=server_url, schema=schema,
                        stripe_api_base=stripe_api_base, workdir=workdir, timeout=timeout,
                        env={"BOX_OFFICE_KEY": KEY, "BOX_OFFICE_WEBHOOK_SECRET": secret,
                             "BOX_OFFICE_BUGS": ",".join(bugs),
                             "BOX_OFFICE_METADATA_KEY": metadata_key,
                             "BOX_OFFICE_SIGNATURES": signatures})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------
# the service on its own


class Shop:
    """The box office and the fake Stripe, with the few moves a test makes."""

    def __init__(self, url: str, stripe: Service, db: Database,
                 secret: str = "whsec_boxoffice_test") -> None:
        self.url, self.stripe, self.db, self.secret = url, stripe, db, secret
        self.http = httpx.Client(timeout=15, trust_env=False)

    def show(self, *, price: int = 2500, capacity: int = 10) -> tuple[int, int]:
        code = f"t-{secrets.token_hex(3)}"
        [show] = self.db.fetch("insert into shows (code, title) values ($1, 'Test') returning id",
                               code)
        [tier] = self.db.fetch("insert into tiers (code, show_id, name, price_cents, capacity) "
                               "values ($1, $2, 'Stalls', $3, $4) returning id",
                               code + "-tt1", show["id"], price, capacity)
        return show["id"], tier["id"]

    def checkout(self, show: int, tier: int, seats: int = 2, *, key: str | None = None,
                 unit: int | None = 2500, total: int | None = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"show": show, "tier": tier, "seats": seats,
                                "email": "a@box.test", "name": "A"}
        if unit is not None:
            body["quote"] = {"unit_cents": unit, "total_cents": unit * seats if total is None
                             else total}
        sent = {"X-Box-Office-Key": KEY} if headers is None else headers
        if key:
            sent["Idempotency-Key"] = key
        return self.http.post(self.url + "/api/v2/checkout", json=body, headers=sent)

    def session(self, show: int, tier: int, seats: int = 2) -> str:
        answer = self.checkout(show, tier, seats)
        assert answer.status_code == 200, answer.text
        session_id = answer.json()["checkout"]["id"]
        assert session_id.startswith("cs_")
        return str(session_id)

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.post(self.stripe.url + path, json=body or {})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def pay(self, session_id: str, outcome: str = "paid") -> dict[str, dict[str, Any]]:
        """Pay at the fake Stripe; its events by type."""
        answer = self.control(f"/_chaos/checkout/sessions/{session_id}/pay", {"outcome": outcome})
        return {event["type"]: event for event in answer["events"]}

    def deliver(self, event: dict[str, Any], variant: str = "valid") -> httpx.Response:
        signed = sign(json.dumps(event), self.secret, now=int(time.time()), variant=variant)
        return self.http.post(self.url + "/hooks/stripe", content=signed.body,
                              headers=signed.headers)

    def admissions(self, tier: int) -> int:
        [row] = self.db.fetch("select count(*)::int as n from admissions where tier_id = $1 "
                              "and status = 'valid'", tier)
        return int(row["n"])

    def taken(self, tier: int) -> int:
        [row] = self.db.fetch("select taken from tiers where id = $1", tier)
        return int(row["taken"])


@pytest.fixture
def shop_for(server_url: str, schema: str, fake_stripe: Service, tmp_path: Path):
    """``shop_for(*bugs)``: the box office (with those bugs) on this test's fresh schema."""
    stack = contextlib.ExitStack()

    def start(*bugs: str, signatures: str = "verify") -> Shop:
        url = stack.enter_context(box_office(server_url, schema, fake_stripe.url, tmp_path, bugs,
                                             signatures=signatures))
        db = Database(server_url, schema=schema)
        stack.callback(db.close)
        shop = Shop(url, fake_stripe, db)
        stack.callback(shop.http.close)
        return shop

    with stack:
        yield start


def test_checkout_creates_a_session_at_the_database_price(shop_for):
    shop = shop_for()
    show, tier = shop.show(price=2500, capacity=10)
    answer = shop.checkout(show, tier, seats=3)
    assert answer.status_code == 200, answer.text
    checkout = answer.json()["checkout"]
    assert checkout["id"].startswith("cs_") and checkout["url"]
    listed = shop.http.get(shop.stripe.url + "/_chaos/objects/checkout.session",
                           params={"metadata[event_id]": str(show)}).json()["data"]
    assert [(s["id"], s["amount_total"]) for s in listed] == [(checkout["id"], 7500)]
    assert shop.taken(tier) == 3


def test_checkout_refuses_a_wrong_key_a_tampered_price_and_bad_input(shop_for):
    shop = shop_for()
    show, tier = shop.show(price=2500)
    assert shop.checkout(show, tier, headers={}).status_code == 401
    assert shop.checkout(show, tier, headers={"X-Box-Office-Key": "nope"}).status_code == 401
    assert shop.checkout(show, tier, unit=1).status_code == 422
    assert shop.checkout(show, tier, total=1).status_code == 422
    assert shop.checkout(show + 1000, tier).status_code == 404
    assert shop.checkout(show, tier, seats=0).status_code == 400
    assert shop.taken(tier) == 0


def test_an_idempotency_key_gives_one_session(shop_for):
    shop = shop_for()
    show, tier = shop.show()
    first = shop.checkout(show, tier, key="k-1")
    again = shop.checkout(show, tier, key="k-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert shop.checkout(show, tier, seats=1, key="k-1").status_code == 422
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: shop.checkout(show, tier, key="k-2"), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["checkout"]["id"] for a in answers}) == 1
    assert shop.taken(tier) == 4


def test_a_stripe_failure_holds_nothing_and_a_retry_with_the_key_resumes(shop_for):
    shop = shop_for()
    show, tier = shop.show(capacity=2)
    # Stripe fails, whatever the client retries
    shop.control("/_chaos/faults", {"method": "POST", "path": "/v1/checkout/sessions",
                                    "kind": "error", "status": 500, "times": 20})
    failed = shop.checkout(show, tier, seats=2, key="k-failed")
    assert failed.status_code == 502, failed.text
    assert shop.taken(tier) == 0
    assert shop.http.delete(shop.stripe.url + "/_chaos/faults").status_code == 200
    retried = shop.checkout(show, tier, seats=2, key="k-failed")
    assert retried.status_code == 200, retried.text
    assert shop.taken(tier) == 2
    listed = shop.http.get(shop.stripe.url + "/_chaos/objects/checkout.session",
                           params={"metadata[event_id]": str(show)}).json()["data"]
    assert [s["id"] for s in listed] == [retried.json()["checkout"]["id"]]


def test_a_signed_completion_admits_the_seats_once(shop_for):
    shop = shop_for()
    show, tier = shop.show()
    events = shop.pay(shop.session(show, tier, seats=2))
    completed = events["checkout.session.completed"]
    first = shop.deliver(completed)
    assert first.status_code == 200, first.text
    assert shop.admissions(tier) == 2
    # duplicates, in a row and at the same time: 2xx, and still one set
    assert shop.deliver(completed).status_code == 200
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: shop.deliver(completed), range(6)))
    assert {a.status_code for a in answers} == {200}
    assert shop.admissions(tier) == 2
    # an event it does not handle is acknowledged too
    assert shop.deliver(events["payment_intent.succeeded"]).status_code == 200


def test_with_double_admit_a_duplicate_delivery_admits_twice(shop_for):
    shop = shop_for("double-admit")
    show, tier = shop.show()
    completed = shop.pay(shop.session(show, tier, seats=2))["checkout.session.completed"]
    assert shop.deliver(completed).status_code == 200
    assert shop.deliver(completed).status_code == 200
    assert shop.admissions(tier) == 4


@pytest.mark.parametrize("variant", ["tampered", "wrong-secret", "stale", "missing"])
def test_a_forged_delivery_is_refused_and_changes_nothing(shop_for, variant: str):
    shop = shop_for()
    show, tier = shop.show()
    completed = shop.pay(shop.session(show, tier))["checkout.session.completed"]
    answer = shop.deliver(completed, variant)
    assert 400 <= answer.status_code < 500, answer.text
    assert shop.admissions(tier) == 0
    # ... and the real one still works afterwards (the forgery did not burn the event id)
    assert shop.deliver(completed, "rotated").status_code == 200
    assert shop.admissions(tier) == 2


def test_a_signed_payload_that_is_no_event_is_refused(shop_for):
    shop = shop_for()
    for payload in ('{"hello": 1}', "[1, 2]", '{"id": "evt_1", "type": "x"}'):
        signed = sign(payload, shop.secret, now=int(time.time()))
        answer = shop.http.post(shop.url + "/hooks/stripe", content=signed.body,
                                headers=signed.headers)
        assert answer.status_code == 400, (payload, answer.text)


def test_an_unpaid_completion_waits_and_a_failed_payment_gives_the_seats_back(shop_for):
    shop = shop_for()
    show, tier = shop.show(capacity=2)
    events = shop.pay(shop.session(show, tier, seats=2), "async_failed")
    assert events["checkout.session.completed"]["data"]["object"]["payment_status"] == "unpaid"
    assert shop.deliver(events["checkout.session.completed"]).status_code == 200
    assert shop.admissions(tier) == 0 and shop.taken(tier) == 2
    assert shop.deliver(events["checkout.session.async_payment_failed"]).status_code == 200
    assert shop.admissions(tier) == 0 and shop.taken(tier) == 0
    # an asynchronous success admits
    later = shop.pay(shop.session(show, tier, seats=2), "async_succeeded")
    assert shop.deliver(later["checkout.session.async_payment_succeeded"]).status_code == 200
    assert shop.admissions(tier) == 2


def test_expiry_and_refund_give_the_seats_back_and_a_refund_voids_admissions(shop_for):
    shop = shop_for()
    show, tier = shop.show(capacity=4)
    expired = shop.control(f"/_chaos/checkout/sessions/{shop.session(show, tier)}/expire")
    assert shop.deliver(expired["events"][0]).status_code == 200
    assert shop.taken(tier) == 0
    events = shop.pay(shop.session(show, tier, seats=2))
    assert shop.deliver(events["checkout.session.completed"]).status_code == 200
    intent = events["payment_intent.succeeded"]["data"]["object"]["id"]
    refund = shop.control("/_chaos/refunds", {"payment_intent": intent})
    [refunded] = [e for e in refund["events"] if e["type"] == "charge.refunded"]
    assert shop.deliver(refunded).status_code == 200
    assert shop.admissions(tier) == 0 and shop.taken(tier) == 0
    # a refund delivered before its completion: the completion then admits nobody
    early = shop.pay(shop.session(show, tier, seats=1))
    intent = early["payment_intent.succeeded"]["data"]["object"]["id"]
    refund = shop.control("/_chaos/refunds", {"payment_intent": intent})
    assert shop.deliver([e for e in refund["events"] if e["type"] == "charge.refunded"][0]) \
        .status_code == 200
    assert shop.deliver(early["checkout.session.completed"]).status_code == 200
    assert shop.admissions(tier) == 0 and shop.taken(tier) == 0


def test_capacity_holds_under_a_burst(shop_for):
    shop = shop_for()
    show, tier = shop.show(capacity=3)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: shop.checkout(show, tier, seats=1), range(10)))
    assert sorted(a.status_code for a in answers) == [200] * 3 + [409] * 7
    assert shop.taken(tier) == 3


def test_with_oversell_capacity_does_not_hold(shop_for):
    shop = shop_for("oversell")
    show, tier = shop.show(capacity=3)
    assert shop.checkout(show, tier, seats=2).status_code == 200
    assert shop.checkout(show, tier, seats=2).status_code == 200
    assert shop.taken(tier) == 4


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "tests.boxoffice", "--bug", "nope"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--bug" in result.stderr


# --------------------------------------------------------------------------------------
# the tool, driven through tests/boxoffice/chaos.toml only


def run_against_box_office(server_url: str, schema: str, tmp_path: Path, monkeypatch,
                           bugs: tuple[str, ...] = (), config: Path = CONFIG,
                           replay: bool = False, overrides: tuple[str, ...] = (),
                           metadata_key: str = "event_id", signatures: str = "verify",
                           args: tuple[str, ...] = (),
                           ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Start the box office (its Stripe client aimed at a port the tool's fake Stripe
    will take), then ``python -m chaos --config tests/boxoffice/chaos.toml``; with
    ``replay``, then ``python -m chaos replay`` of every case it saved (report["replays"])."""
    secret = "whsec_" + secrets.token_hex(16)
    monkeypatch.setenv("BOX_OFFICE_KEY", KEY)
    monkeypatch.setenv("BOX_OFFICE_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("BOX_OFFICE_DATABASE_URL", server_url)
    stripe_port = free_port()
    written = tmp_path / "report.json"
    with box_office(server_url, schema, f"http://127.0.0.1:{stripe_port}", tmp_path, bugs,
                    secret=secret, metadata_key=metadata_key, signatures=signatures) as url:
        options = ["--config", str(config), "--set", f"target.base_url={url}",
                   "--set", f"stripe.port={stripe_port}", "--set", f"database.schema={schema}",
                   *(arg for item in overrides for arg in ("--set", item))]
        result = run_tool(*options, "--examples", "30", "--seed", "1", "--report", str(written),
                          *args, cwd=tmp_path)
        assert written.exists(), f"no report (exit {result.returncode}): {result.stderr[-800:]}"
        report = json.loads(written.read_text())
        if replay:
            cases = [f["replay"].split()[-1] for f in report["failures"] if f.get("replay")]
            report["replays"] = [run_tool("replay", case, *options, cwd=tmp_path)
                                 for case in cases]
    return result, report


USER_INVARIANTS = ("one-admission-per-seat", "admissions-only-for-paid-purchases",
                   "taken-matches-held-purchases")


def failed_invariants(report: dict[str, Any]) -> set[str]:
    return {f["invariant"] for f in report["failures"] if f["status"] == "FAILED"}


@pytest.mark.e2e
def test_the_tool_passes_the_correct_box_office(server_url: str, schema: str, tmp_path: Path,
                                                monkeypatch):
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["verdict"] == "pass"
    assert report["examples"] >= 30
    assert report["failures"] == []
    assert report["http"]["requests"] > 30
    # the config's own invariants were checked too, and the service's meter was read
    assert {name: report["invariants"].get(name) for name in USER_INVARIANTS} == \
        dict.fromkeys(USER_INVARIANTS, "pass")
    assert report["concurrency"]["peak_in_flight"] > 1
    # it really played the stories: tickets were issued and deliveries acknowledged
    db = Database(server_url, schema=schema)
    try:
        [row] = db.fetch("select count(*)::int as n from admissions")
        [events] = db.fetch("select count(*)::int as n from stripe_events")
    finally:
        db.close()
    assert row["n"] > 0 and events["n"] > 0


@pytest.mark.e2e
def test_the_tool_catches_double_admit_in_the_box_office(server_url: str, schema: str,
                                                         tmp_path: Path, monkeypatch):
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch,
                                            ("double-admit",), replay=True,
                                            args=("--shrink-seconds", "5"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert report["verdict"] == "fail"
    assert "one-ticket-set-per-payment" in failed_invariants(report), report["failures"]
    # the case it saved replays through the same config: it fails again
    assert report["replays"]
    for replayed in report["replays"]:
        assert replayed.returncode == 1, replayed.stdout + replayed.stderr
        assert "FAILED" in replayed.stdout


@pytest.mark.e2e
def test_a_box_office_that_answers_500_after_committing_is_judged(server_url: str, schema: str,
                                                                 tmp_path: Path, monkeypatch):
    """The seed's webhook as it is: every delivery does its work, commits, then answers
    500, and nothing stops a duplicate. Not an outage (exit 3): a FAIL that names the
    duplicate tickets the database holds, the thresholds' breach, and a note that
    Stripe will retry every one of those deliveries."""
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch,
                                            ("double-admit", "answer-500"),
                                            args=("--shrink-seconds", "5", "--confirm-runs", "2"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert report["verdict"] == "fail" and "error" not in report
    assert "one-ticket-set-per-payment" in failed_invariants(report), report["failures"]
    assert report["thresholds"]["http-error-rate"]["verdict"] == "fail"
    # (a refund delivered alone, before any event of its payment, is "ahead of its payment":
    # its own note; only what the example shows counts against it)
    assert {n["name"] for n in report["notes"]} <= {"answered-5xx-after-commit",
                                                   "answered-5xx-ahead-of-payment"}
    [note] = [n for n in report["notes"] if n["name"] == "answered-5xx-after-commit"]
    assert note["message"].startswith("every signed delivery answered 5xx (HTTP 500 x ")
    assert note["after_commit"] > 0 and note["payments"] > 0
    assert note["answered_5xx"] == note["deliveries"] > 0
    assert "NOTE  answered-5xx-after-commit: every signed delivery answered 5xx" in result.stdout


@pytest.mark.e2e
def test_the_tool_catches_oversell_in_the_box_office(server_url: str, schema: str,
                                                     tmp_path: Path, monkeypatch):
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch,
                                            ("oversell",))
    assert result.returncode == 1, result.stdout + result.stderr
    assert report["verdict"] == "fail"
    assert "no-oversold-ticket-type" in failed_invariants(report), report["failures"]


@pytest.mark.e2e
def test_a_broken_user_invariant_is_reported_by_name(server_url: str, schema: str,
                                                    tmp_path: Path, monkeypatch):
    """A rule of the user's own that the correct box office does not keep (a checkout
    whose buyer never pays stays open): the tool names it, with its rows."""
    config = tmp_path / "strict.toml"
    config.write_text(CONFIG.read_text() + """
[[invariants]]
name = "no-purchase-left-open"
sql = "select id, state from purchases where show_id = $1 and state = 'open'"
message = "a purchase is still open when the example ends"
""")
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch,
                                            config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert failed_invariants(report) == {"no-purchase-left-open"}, report["failures"]
    [failure] = report["failures"]
    assert "still open" in failure["violations"][0]["message"]
    assert failure["violations"][0]["rows"][0]["state"] == "open"


# --------------------------------------------------------------------------------------
# promises: other shapes of the same service, and two bugs that break one promise


@pytest.mark.e2e
def test_with_early_refund_dropped_a_refund_before_its_completion_is_lost(shop_for):
    shop = shop_for("early-refund-dropped")
    show, tier = shop.show()
    events = shop.pay(shop.session(show, tier, seats=2))
    intent = events["payment_intent.succeeded"]["data"]["object"]["id"]
    refund = shop.control("/_chaos/refunds", {"payment_intent": intent})
    [refunded] = [e for e in refund["events"] if e["type"] == "charge.refunded"]
    assert shop.deliver(refunded).status_code == 200          # acknowledged, and dropped
    assert shop.deliver(events["checkout.session.completed"]).status_code == 200
    assert shop.admissions(tier) == 2


@pytest.mark.e2e
def test_with_one_seat_refund_a_refund_voids_one_seat_of_two(shop_for):
    shop = shop_for("one-seat-refund")
    show, tier = shop.show()
    events = shop.pay(shop.session(show, tier, seats=2))
    assert shop.deliver(events["checkout.session.completed"]).status_code == 200
    intent = events["payment_intent.succeeded"]["data"]["object"]["id"]
    refund = shop.control("/_chaos/refunds", {"payment_intent": intent})
    [refunded] = [e for e in refund["events"] if e["type"] == "charge.refunded"]
    assert shop.deliver(refunded).status_code == 200
    assert shop.admissions(tier) == 1


def skipped_invariants(report: dict[str, Any]) -> dict[str, str]:
    return {p["invariant"]: p["why"] for p in report["promises"] if not p["checked"]}


@pytest.mark.e2e
def test_the_tool_passes_the_box_office_without_idempotency_key(server_url: str, schema: str,
                                                                tmp_path: Path, monkeypatch):
    """The checkout takes no key (idempotency_header = ""): the tool sends none, and
    does not judge one-session-per-idempotency-key, though a double click makes two
    sessions. It says so in the report."""
    result, report = run_against_box_office(
        server_url, schema, tmp_path, monkeypatch,
        overrides=('target.checkout.idempotency_header=""',))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["failures"] == []
    assert report["invariants"]["one-session-per-idempotency-key"] == "skipped"
    assert skipped_invariants(report) == {
        "one-session-per-idempotency-key": 'target.checkout.idempotency_header = ""'}
    assert re.search(r"SKIPPED +one-session-per-idempotency-key +not promised", result.stdout)
    # the double click really made two purchases: the promise would have been broken
    db = Database(server_url, schema=schema)
    try:
        [row] = db.fetch("select count(*)::int as n from purchases where idem_key is not null")
        [sessions] = db.fetch("select count(*)::int as n from purchases "
                              "where stripe_session is not null")
    finally:
        db.close()
    assert row["n"] == 0 and sessions["n"] > report["examples"]


@pytest.mark.e2e
def test_the_tool_passes_the_box_office_paid_asynchronously_under_its_own_metadata_key(
        server_url: str, schema: str, tmp_path: Path, monkeypatch):
    """Sessions carry ``show_id``, not ``event_id``; delayed payments complete
    ``unpaid`` and succeed later. The payment state is read from Stripe's session
    and charge, not from the completion's snapshot: no false alarm."""
    result, report = run_against_box_office(
        server_url, schema, tmp_path, monkeypatch, metadata_key="show_id",
        overrides=("target.stripe.session_metadata_key=show_id",
                   'promises.confirms=["checkout.session.completed", '
                   '"checkout.session.async_payment_succeeded"]'))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["failures"] == [] and skipped_invariants(report) == {}
    db = Database(server_url, schema=schema)
    try:
        [succeeded] = db.fetch("select count(*)::int as n from stripe_events "
                               "where type = 'checkout.session.async_payment_succeeded'")
        [paid] = db.fetch("select count(*)::int as n from purchases p where p.state = 'paid' "
                          "and exists (select 1 from admissions a where a.purchase_id = p.id)")
    finally:
        db.close()
    assert succeeded["n"] > 0 and paid["n"] > 0


@pytest.mark.e2e
@pytest.mark.parametrize("bug", ["early-refund-dropped", "one-seat-refund"])
def test_the_tool_catches_each_refund_bug_of_the_box_office(server_url: str, schema: str,
                                                            tmp_path: Path, monkeypatch,
                                                            bug: str):
    """Two bugs, one promise (a refund voids every seat), two stories: a refund
    delivered before its completion; a two-seat purchase completed, then refunded."""
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch, (bug,))
    assert result.returncode == 1, result.stdout + result.stderr
    [failure] = [f for f in report["failures"] if f["invariant"] == "refund-voids-tickets"]
    assert failure["status"] == "FAILED", failure
    told = "refund first" if bug == "early-refund-dropped" \
        else "several seats refunded after completion"
    assert told in refund_stories(failure), failure["steps"]


def refund_stories(failure: dict[str, Any]) -> set[str]:
    """The refund stories a failure's scenario tells: ``refund first`` (no completion
    delivered in an earlier wave than the refund) and ``several seats refunded after
    completion`` (a completion in the refund's wave or earlier, a buyer of 2+ seats).
    Deliveries fired in one wave race, so such a scenario tells both."""
    waves = failure["schedule"]["waves"]

    def first_wave(event: str) -> int | None:
        return next((i for i, wave in enumerate(waves) for step in wave
                     if step.get("kind") == "deliver"
                     and step.get("event", "checkout.session.completed") == event), None)

    refund, completion = first_wave("charge.refunded"), first_wave("checkout.session.completed")
    if refund is None:
        return set()
    stories = set()
    if completion is None or refund <= completion:
        stories.add("refund first")
    seats = max(b.get("quantity", 1) for b in failure["schedule"]["buyers"])
    if completion is not None and completion <= refund and seats >= 2:
        stories.add("several seats refunded after completion")
    return stories


@pytest.mark.e2e
def test_with_both_refund_bugs_one_run_reports_both_stories(server_url: str, schema: str,
                                                           tmp_path: Path, monkeypatch):
    """Both refund bugs on: the run reports the refund that came first and the
    two-seat refund that voided one seat, each as a FAILED finding of its own
    (today through two invariants: the built-in one and the box office's own)."""
    result, report = run_against_box_office(server_url, schema, tmp_path, monkeypatch,
                                            ("early-refund-dropped", "one-seat-refund"))
    assert result.returncode == 1, result.stdout + result.stderr
    told = [refund_stories(f) for f in report["failures"] if f["status"] == "FAILED"]
    # two findings, one for each story (a racing scenario may tell both)
    assert any("refund first" in t for t in told) and any(
        "several seats refunded after completion" in t for t in told), \
        [(f["invariant"], f["steps"]) for f in report["failures"]]
    assert len([t for t in told if t]) >= 2


@pytest.mark.e2e
def test_a_refetching_box_office_acts_on_stripes_objects_whatever_the_delivery_says(shop_for):
    """``--signatures refetch`` (pretix's way): forged deliveries get 200; the session,
    charge or payment intent is read from Stripe, and only its state counts."""
    shop = shop_for(signatures="refetch")
    show, tier = shop.show(capacity=4)
    # a forged expiry of an open session: 200, and the seats stay held
    open_session = shop.session(show, tier, seats=2)
    expired = shop.control(f"/_chaos/checkout/sessions/{open_session}/expire")["events"][0]
    early = shop.pay(shop.session(show, tier, seats=2), "async_pending")
    forged_expiry = {**expired, "data": {"object": {**expired["data"]["object"],
                                                    "id": early["checkout.session.completed"]
                                                    ["data"]["object"]["id"]}}}
    assert shop.deliver(forged_expiry, "missing").status_code == 200
    assert shop.taken(tier) == 4
    # the real expiry, even unsigned: Stripe says it expired, so the seats go back
    assert shop.deliver(expired, "tampered").status_code == 200
    assert shop.taken(tier) == 2
    # a completion whose snapshot says unpaid admits once Stripe says paid
    settled = shop.control(f"/_chaos/checkout/sessions/"
                           f"{early['checkout.session.completed']['data']['object']['id']}/settle",
                           {"outcome": "succeeded"})
    assert shop.deliver(early["checkout.session.completed"], "wrong-secret").status_code == 200
    assert shop.admissions(tier) == 2   # the snapshot said unpaid; Stripe says paid
    # a forged refund of a charge Stripe has not refunded changes nothing
    intent = settled["payment_intent"]["id"]
    charge = settled["charge"]
    forged_refund = {"id": "evt_forged", "type": "charge.refunded", "object": "event",
                     "data": {"object": {**charge, "refunded": True,
                                         "amount_refunded": charge["amount"]}}}
    assert shop.deliver(forged_refund, "stale").status_code == 200
    assert shop.admissions(tier) == 2
    refund = shop.control("/_chaos/refunds", {"payment_intent": intent})
    [refunded] = [e for e in refund["events"] if e["type"] == "charge.refunded"]
    assert shop.deliver(forged_refund, "missing").status_code == 200   # now it is so at Stripe
    assert shop.admissions(tier) == 0 and refunded["data"]["object"]["refunded"] is True


@pytest.mark.e2e
@pytest.mark.parametrize("declared", ["refetch", "verify"])
def test_the_signature_promise_decides_how_a_refetching_box_office_is_judged(
        server_url: str, schema: str, tmp_path: Path, monkeypatch, declared: str):
    """The box office re-fetches every object and answers 200 to forgeries. Declared as
    such (``promises.signatures = "refetch"``) it passes; held to "verify", the forged
    deliveries it acknowledged break forged-delivery-rejected, and nothing else."""
    result, report = run_against_box_office(
        server_url, schema, tmp_path, monkeypatch, signatures="refetch",
        overrides=(f'promises.signatures="{declared}"',))
    if declared == "refetch":
        assert result.returncode == 0, result.stdout + result.stderr
        assert report["failures"] == []
        assert "forged deliveries may be acknowledged" in result.stdout
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert failed_invariants(report) == {"forged-delivery-rejected"}, report["failures"]
        # one bug per forged signature the search tried (each is a story of its own)
        assert report["failures"] and all(
            "it must be rejected with 4xx" in failure["violations"][0]["message"]
            for failure in report["failures"])
