"""The bookkeeping of ``benchmarks/mutants.py`` on fabricated reports: what counts
as caught, missed, minimal and a false alarm, the medians, the goals and the exit
verdict. No chaos run here: the benchmark itself runs them."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import mutants
from chaos.reference.bugs import CATALOGUE


def report(*failures: dict[str, Any], first: dict[str, Any] | None = None,
           seconds: float = 9.0, thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"verdict": "fail" if failures else "pass", "seconds": seconds, "examples": 40,
            "failures": list(failures), "first_failure": first,
            "thresholds": thresholds or {"http-p95": {"verdict": "pass"}}}


def failure(invariant: str, requests: int, reproduced: str = "5/5",
            status: str = "FAILED") -> dict[str, Any]:
    return {"invariant": invariant, "status": status, "requests": requests,
            "reproduced": reproduced, "phase": "search", "note": None}


def caught(bug: str, seed: int, *, requests: int, seconds_to_first: float,
           reproduced: str = "5/5") -> dict[str, Any]:
    inv = CATALOGUE[bug].caught_by
    return mutants.run_outcome(bug, seed, 1, report(
        failure(inv, requests, reproduced),
        first={"example": seed * 10, "seconds": seconds_to_first, "invariant": inv,
               "phase": "search"}), wall=12.0)


def test_a_run_that_breaks_the_catalogued_invariant_catches_the_bug():
    row = caught("no-dedup", 1, requests=2, seconds_to_first=2.5, reproduced="4/5")
    assert row["result"] == "caught" and row["invariant"] == "one-ticket-set-per-payment"
    assert row["expected_invariant"] and row["minimal"] and not row["below_minimal"]
    assert (row["examples_to_first"], row["seconds_to_first"]) == (10, 2.5)
    assert (row["reproduced_runs"], row["confirm_runs"]) == (4, 5)


def test_more_requests_than_the_minimum_is_not_minimal_and_fewer_is_flagged():
    assert not caught("no-dedup", 1, requests=3, seconds_to_first=1)["minimal"]
    assert caught("no-dedup", 1, requests=1, seconds_to_first=1)["below_minimal"]


def test_a_flaky_finding_or_a_pass_misses_the_bug_and_an_exit_3_is_an_error():
    flaky = report(failure("one-ticket-set-per-payment", 2, "0/5", status="FLAKY"))
    assert mutants.run_outcome("no-dedup", 1, 0, flaky, wall=1)["result"] == "missed"
    assert mutants.run_outcome("no-dedup", 1, 0, report(), wall=1)["result"] == "missed"
    error = mutants.run_outcome("no-dedup", 1, 3, {"error": "target down"}, wall=1)
    assert (error["result"], error["error"]) == ("error", "target down")
    killed = mutants.run_outcome("no-dedup", 1, None, None, wall=900, error="killed")
    assert killed["result"] == "error"


def test_any_failure_or_failed_threshold_of_the_correct_service_is_a_false_alarm():
    assert mutants.run_outcome("correct", 1, 0, report(), wall=1)["result"] == "pass"
    flaky = report(failure("no-lost-payment", 3, "0/5", status="FLAKY"))
    assert mutants.run_outcome("correct", 1, 0, flaky, wall=1)["result"] == "false alarm"
    slow = report(thresholds={"http-p95": {"verdict": "fail"}})
    row = mutants.run_outcome("correct", 1, 1, slow, wall=1)
    assert (row["result"], row["thresholds_failed"]) == ("false alarm", ["http-p95"])


def test_summary_takes_median_and_worst_over_seeds_and_pools_reproduction():
    runs = [caught("oversell", 1, requests=2, seconds_to_first=4.0, reproduced="3/5"),
            caught("oversell", 2, requests=4, seconds_to_first=40.0, reproduced="5/5"),
            caught("oversell", 3, requests=2, seconds_to_first=10.0, reproduced="2/5")]
    row = mutants.summarize("oversell", runs)
    assert (row["caught"], row["verdict"], row["race"]) == (3, "caught", True)
    assert row["seconds_to_first"] == {"median": 10.0, "worst": 40.0}
    assert row["requests"] == {"median": 2, "worst": 4}
    assert row["minimal_runs"] == 2
    assert row["reproduction"] == {"reproduced": 10, "runs": 15, "rate": 0.667, "worst": 0.4}
    assert "oversell (race)" in mutants.table([row])


def test_one_missed_seed_misses_the_bug_and_fails_the_benchmark():
    runs = [caught("no-dedup", 1, requests=2, seconds_to_first=1),
            mutants.run_outcome("no-dedup", 2, 0, report(), wall=1)]
    rows = [mutants.summarize("no-dedup", runs),
            mutants.summarize("correct", [mutants.run_outcome("correct", 1, 0, report(), wall=1)])]
    assert rows[0]["verdict"] == "missed"
    assert mutants.failed(rows) == ["no-dedup: missed"]


def test_goals_on_a_full_fabricated_run():
    rows = [mutants.summarize(bug, [caught(bug, 1, requests=b.minimal_requests + (bug == "oversell"),
                                           seconds_to_first=45.0 if bug == "oversell" else 3.0)])
            for bug, b in CATALOGUE.items()]
    alarm = report(failure("no-lost-payment", 2))
    rows.append(mutants.summarize("correct", [mutants.run_outcome("correct", 1, 1, alarm, wall=1)]))
    met = {g["goal"].split(" ")[0]: g["met"] for g in mutants.goals(rows)}
    assert met == {"12": True, "0": False, "race": False, "shrunk": True}   # 11 of 12 minimal
    assert mutants.failed(rows) == ["correct: false alarm"]


def test_options_it_sets_itself_are_refused_and_the_rest_pass_through():
    args, rest = mutants.parse(["--bugs", "correct,no-dedup", "--examples", "5",
                                "--database-url", "postgresql://127.0.0.1/x"])
    assert args.names == ["correct", "no-dedup"]
    assert rest == ["--examples", "5", "--database-url", "postgresql://127.0.0.1/x"]
    for bad in (["--seed", "3"], ["--bugs", "nope"], ["--seeds", "0"]):
        with pytest.raises(SystemExit) as exit_:
            mutants.parse(bad)
        assert exit_.value.code == 2


def test_of_several_bugs_of_the_expected_invariant_the_smallest_is_judged():
    inv = CATALOGUE["no-dedup"].caught_by
    row = mutants.run_outcome("no-dedup", 1, 1, report(
        failure("no-oversold-ticket-type", 2), failure(inv, 3), failure(inv, 2, "3/5")),
        wall=10.0)
    assert (row["invariant"], row["requests"], row["reproduced"]) == (inv, 2, "3/5")
    assert row["minimal"]
