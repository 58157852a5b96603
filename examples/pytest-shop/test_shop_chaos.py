"""The shop under payment-chaos' search, as a test: the plugin's ``chaos_search`` runs the
load wave, the playbook's classic stories and drawn scenarios (duplicated, reordered and
forged deliveries, checkout retries, Stripe faults) against the shop, checks every
built-in invariant the shop promises and its own Python one (``shop_invariants.py``), and
fails with the report's summary: each broken invariant, its scenario shrunk and in words,
the evidence rows, and the command that replays its saved case."""

from __future__ import annotations


def test_the_chaos_search_finds_no_broken_promise(chaos_search):
    report = chaos_search(examples=15, seed=1, concurrency=8, confirm_runs=2,
                          shrink_seconds=10, max_seconds=240)
    assert report.examples >= 15
