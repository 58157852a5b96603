"""The example project (``examples/pytest-shop/``): a user's shop tested with the pytest
plugin. Its own test suite runs here, in a child pytest, against the session's PostgreSQL:
correct, every test passes; with its bug switched on (``SHOP_BUG=no-dedup``, every
redelivery issues tickets again), exactly the tests that can see a redelivery fail: the
plain one, the ``@given`` one and the chaos search, whose summary names the built-in
invariant and the shop's own Python one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.database import Database

pytestmark = pytest.mark.e2e   # a child pytest, a fake Stripe process, replays

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pytest-shop"
CASE = "regressions/one-ticket-set-per-payment-59fd4a999e.json::one-ticket-set-per-payment-59fd4a999e"
TESTS = {
    "test_shop.py::test_a_paid_order_gets_its_tickets",
    "test_shop.py::test_a_redelivered_event_issues_no_second_ticket_set",
    "test_shop.py::test_a_forged_delivery_is_refused_and_issues_nothing",
    "test_shop.py::test_a_refund_voids_the_tickets",
    "test_shop.py::test_stripe_failing_the_checkout_is_a_502_and_no_order",
    "test_shop_properties.py::test_every_drawn_story_keeps_the_shops_promises",
    "test_shop_chaos.py::test_the_chaos_search_finds_no_broken_promise",
    CASE,
}
#: The tests the no-dedup bug must fail: the plain redelivery test, the @given test run
#: through chaos_target, and the chaos search (the built-in invariant and the shop's own
#: Python one both break).
CAUGHT_BY = {
    "test_shop.py::test_a_redelivered_event_issues_no_second_ticket_set",
    "test_shop_properties.py::test_every_drawn_story_keeps_the_shops_promises",
    "test_shop_chaos.py::test_the_chaos_search_finds_no_broken_promise",
}


def run_example(tmp_path: Path, server_url: str, **env: str) -> tuple[int, dict[str, str], str]:
    """The example's pytest run, in a copy of it (Hypothesis and Python write their caches
    into the folder they run in): exit code, each test's outcome, the output."""
    project = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".hypothesis", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}",
         "-rA", "-q"],
        cwd=project, capture_output=True, text=True, timeout=540,
        env={**os.environ, "DATABASE_URL": server_url, **env})
    outcomes = {m.group(2): m.group(1) for m in re.finditer(
        r"^(PASSED|FAILED|ERROR) (\S+::\S+)", result.stdout, re.MULTILINE)}
    return result.returncode, outcomes, result.stdout + result.stderr


def shop_schemas(server_url: str) -> list[str]:
    db = Database(server_url, schema="public")
    try:
        return [r["nspname"] for r in db.fetch(
            "select nspname from pg_namespace where nspname like 'shop\\_%'")]
    finally:
        db.close()


def test_the_correct_shop_passes_its_tests_and_its_corpus(tmp_path, server_url):
    before = shop_schemas(server_url)
    code, outcomes, output = run_example(tmp_path, server_url)
    assert code == 0, output
    assert outcomes == dict.fromkeys(TESTS, "PASSED"), output
    assert shop_schemas(server_url) == before          # the tests dropped their schema


def test_the_no_dedup_bug_fails_the_redelivery_tests_and_only_them(tmp_path, server_url):
    code, outcomes, output = run_example(tmp_path, server_url, SHOP_BUG="no-dedup")
    assert code == 1, output
    assert {t for t, outcome in outcomes.items() if outcome != "PASSED"} == CAUGHT_BY, output
    assert set(outcomes) == TESTS, output
    assert "buyer 1 checks out and pays for 1 ticket" in output      # shrunk, in words
    # the search's summary: the built-in invariant and the shop's Python one, judged alike
    assert "one-ticket-set-per-payment" in output
    assert "acknowledged-events-are-recorded" in output
    assert "an event the webhook acknowledged is missing from stripe_events" in output
    assert "whsec_" not in output and "sk_test_chaos_" not in output   # the secrets
