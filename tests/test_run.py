"""The run as a user starts it, for what the executor, checker and search add:
the whole-run deadline, the report's concurrency figures, per-invariant
verdicts with their evidence, and the thresholds."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from chaos.invariants import INVARIANTS
from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # whole chaos runs, in processes


def test_max_seconds_stops_a_long_search_cleanly_and_reports_it(tmp_path: Path, server_url: str):
    started = time.monotonic()
    result = run_tool("--examples", "1000000", "--max-seconds", "8", "--profile", "ci",
                      "--database-url", server_url, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["stopped"] == "max-seconds" and report["verdict"] == "pass"
    assert report["profile"] == "ci" and report["seed"] is None  # derandomized
    assert 0 < report["examples"] < 1_000_000
    assert "(stopped early: max-seconds)" in result.stdout
    assert elapsed < 8 + 30  # the deadline, plus stopping the services it started
    print(f"--max-seconds 8: {report['examples']} examples, tool time {report['seconds']} s, "
          f"wall {elapsed:.1f} s")


def test_the_report_carries_verdicts_evidence_concurrency_and_thresholds(tmp_path: Path,
                                                                          server_url: str):
    result = run_tool("--bug", "no-dedup", "--seed", "5", "--confirm-runs", "3",
                      "--examples", "30",
                      "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    # no-dedup may break more than the one-ticket-set (two ticket sets can oversell a
    # tight ticket type): each broken invariant is a failure of its own
    failed = {f["invariant"] for f in report["failures"] if f["status"] == "FAILED"}
    assert "one-ticket-set-per-payment" in failed
    assert report["invariants"] == {name: "fail" if name in failed else "pass"
                                    for name in INVARIANTS}
    [evidence] = report["evidence"]["one-ticket-set-per-payment"][:1]
    # one order (made at checkout), fulfilled twice: two ticket sets
    assert evidence["rows"][0]["tickets"] == 2 and evidence["rows"][0]["orders"] == 1
    [failure] = [f for f in report["failures"] if f["phase"] != "load"
                 and f["invariant"] == "one-ticket-set-per-payment"]
    # every confirmation run broke it (3, or more where another bug's runs played its story)
    broke, runs = map(int, failure["reproduced"].split("/"))
    assert failure["status"] == "FAILED" and broke == runs >= 3, failure["reproduced"]
    concurrency = report["concurrency"]
    assert concurrency["requested"] == 50
    assert concurrency["peak_in_flight"] == 50 and concurrency["client_peak_in_flight"] == 50
    assert concurrency["start_skew_ms"] >= concurrency["start_skew_p50_ms"] >= 0
    # no-dedup may answer 5xx to a duplicate it cannot store: the error rate is judged
    thresholds = report["thresholds"]
    assert set(thresholds) == {"http-error-rate", "http-p95"}
    rate = thresholds["http-error-rate"]
    assert rate["verdict"] == ("fail" if rate["value"] > rate["limit"] else "pass")
    assert rate["requests"] > 0 and thresholds["http-p95"]["verdict"] == "pass"
    print(f"no-dedup: concurrency {concurrency}, http {report['http']}")


def test_a_threshold_that_breaks_fails_the_run(tmp_path: Path, server_url: str):
    result = run_tool("--examples", "3", "--max-p95", "0.0001", "--database-url", server_url,
                      cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["verdict"] == "fail" and report["failures"] == []
    assert report["thresholds"]["http-p95"]["verdict"] == "fail"
    assert report["thresholds"]["http-p95"]["limit_ms"] == 0.1
    assert "    FAIL  http-p95" in result.stdout


def test_a_deadline_that_leaves_no_time_for_an_example_is_a_usage_error(tmp_path: Path,
                                                                       server_url: str):
    result = run_tool("--max-seconds", "0.01", "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ran out before the first example" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_example_observes_stripes_sessions_the_rows_and_the_targets_peak(server_url: str):
    import httpx

    from chaos.observation import PaymentOutcome
    from chaos.run import reference_run
    from strategies import busy_night

    with reference_run(database_url=server_url, concurrency=8) as runner:
        # a session of the coming example's event that no buyer was told about
        event_id = f"chaos-{runner.run_id}-000001"
        stray = httpx.post(f"{runner.stripe_url}/_chaos/checkout/sessions", trust_env=False,
                           json={"amount_total": 100, "metadata": {"event_id": event_id}}).json()
        result = runner.run_example(busy_night(8))
    obs = result.observation
    assert result.violations == []
    by_id = {s.id: s for s in obs.sessions}
    assert by_id.pop(stray["id"]).outcome is PaymentOutcome.UNPAID
    assert len(by_id) == 8
    assert {(s.outcome, s.quantity, s.amount_total, s.unit_price) for s in by_id.values()} == \
        {(PaymentOutcome.PAID, 1, 2500, 2500)}
    assert sorted(s.buyer for s in by_id.values()) == list(range(8))
    assert sorted(row["checkout_session"] for row in obs.tickets_per_payment) == sorted(by_id)
    assert [row["tickets"] for row in obs.tickets_per_ticket_type] == [8]
    # the target's own Stripe calls: one session create per buyer, each with its own key
    creates = [c for c in obs.stripe_calls if c.method == "POST" and c.path == "/v1/checkout/sessions"]
    assert len(creates) == 8 and all(c.status == 200 for c in creates)
    assert len({c.idempotency_key for c in creates}) == 8
    assert result.history.target_peak_in_flight == 8
    assert result.history.client_peak_in_flight == 8


@pytest.mark.e2e
def test_payment_refund_and_dispute_state_come_from_stripes_charges(server_url: str):
    """After an example the tool reads each session and its charge at the fake Stripe:
    a delayed payment that succeeded is paid (its completion's snapshot said unpaid), a
    refund and a dispute are read on the charge."""
    from chaos.observation import PaymentOutcome
    from chaos.run import reference_run
    from strategies import Buyer, Delivery, Scenario

    outcomes = ("async-succeeded", "refunded", "disputed", "async-failed", "paid")
    scenario = Scenario(buyers=tuple(Buyer(outcome=o) for o in outcomes),
                        waves=((Delivery(0),),))
    with reference_run(database_url=server_url, concurrency=8) as runner:
        result = runner.run_example(scenario)
    assert result.violations == []
    by_buyer = {s.buyer: s.outcome for s in result.observation.sessions}
    assert by_buyer == {0: PaymentOutcome.PAID, 1: PaymentOutcome.REFUNDED,
                        2: PaymentOutcome.DISPUTED, 3: PaymentOutcome.FAILED,
                        4: PaymentOutcome.PAID}
    # the completion the buyer's delivery carried said unpaid; Stripe's session says paid
    [delivery] = [op for op in result.history.ops if op.kind == "deliver"]
    assert delivery.ref.payment_status == "unpaid"


@pytest.mark.e2e
def test_a_partial_refund_is_read_from_the_charge_and_keeps_the_tickets(server_url: str):
    """A partially refunded story refunds one seat's price of a two-seat purchase and
    half the price of a single seat, after the completion: Stripe's charge says
    refunded in part, the reference service keeps the tickets, and nothing breaks."""
    from chaos.observation import PaymentOutcome
    from chaos.run import reference_run
    from strategies import Buyer, Delivery, Scenario

    buyers = (Buyer(quantity=2, outcome="partially-refunded"),
              Buyer(quantity=1, outcome="partially-refunded"))
    scenario = Scenario(buyers=buyers, waves=(
        (Delivery(0), Delivery(1)),
        (Delivery(0, event="charge.refunded"), Delivery(1, event="charge.refunded"))))
    with reference_run(database_url=server_url, concurrency=8) as runner:
        result = runner.run_example(scenario)
    assert result.violations == []
    obs = result.observation
    assert {s.buyer: s.outcome for s in obs.sessions} == {
        0: PaymentOutcome.PARTIALLY_REFUNDED, 1: PaymentOutcome.PARTIALLY_REFUNDED}
    refunds = [op for op in result.history.ops
               if op.delivery is not None and op.delivery.event == "charge.refunded"]
    assert [op.status for op in refunds] == [200, 200]
    tickets = {row["checkout_session"]: row["tickets"] for row in obs.tickets_per_payment}
    assert sorted(tickets[s.id] for s in obs.sessions) == [1, 2]
    # the refunds at the fake Stripe: one seat of two, half of one seat
    # (an op keeps an excerpt of its answer: the refund's amount comes first)
    refunded = sorted(int(re.search(r'"amount": ?(\d+)', op.body).group(1))
                      for op in result.history.ops if op.kind == "stripe.refund")
    assert refunded == [1250, 2500]
