"""Sharding without a run: ``--shard I/N`` splits the work without overlap, the
example database keeps failures the search replays first, and ``merge`` counts a
bug once, sums the totals and merges the latency histograms exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis.database import InMemoryExampleDatabase

from chaos.errors import UsageError
from chaos.exampledb import SavedFailures, database_key, open_database
from chaos.history import DeliveryRef, Op, Outcome
from chaos.latency import Durations
from chaos.load.merge import merge_summaries
from chaos.load.metrics import Metrics
from chaos.load.summary import load_data
from chaos.load.thresholds import thresholds
from chaos.report.merge import NotMergeable, merge_findings, merge_reports
from chaos.search import search
from chaos.shard import Shard, parse_shard
from strategies import playbook, scenarios
from tests.test_search import INVARIANT, Target

TARGET = {"kind": "reference", "bugs": ["no-dedup"]}


# -- --shard I/N ------------------------------------------------------------------------------

def test_shards_take_every_playbook_story_exactly_once():
    stories = [name for name, _ in playbook()]
    parts = [Shard(i, 3).take(stories) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(stories)
    assert all(parts) and not set(parts[0]) & set(parts[1])


def test_shards_draw_with_distinct_seeds_and_a_whole_run_keeps_its_own():
    assert Shard().seed(7) == 7 and Shard().seed(None) is None
    seeds = {Shard(i, 4).seed(7) for i in range(1, 5)} | {Shard(i, 4).seed(None) for i in (1, 2)}
    assert len(seeds) == 6
    assert Shard(2, 4).seed(7) == Shard(2, 4).seed(7)     # the same every night


def test_shards_split_a_budget_into_parts_that_add_up():
    assert [Shard(i, 3).split(100) for i in (1, 2, 3)] == [34, 33, 33]


@pytest.mark.parametrize("text", ["", "2", "0/2", "3/2", "1/0", "a/b", "1/2/3", "1/5000"])
def test_a_bad_shard_is_refused_with_the_form_to_write(text: str):
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)


def test_the_cli_refuses_a_bad_shard_in_one_line():
    from chaos.cli import main

    assert main(["run", "--shard", "3/2"]) == 2


# -- --example-db -------------------------------------------------------------------------------

def test_a_directory_database_and_the_refused_forms(tmp_path: Path):
    assert open_database(str(tmp_path / "db")) is not None
    (tmp_path / "file").write_text("x")
    for url, match in ((str(tmp_path / "file"), "is a file"), ("ftp://x/y", "unknown scheme"),
                       ("github://only-owner", "github://OWNER/REPO")):
        with pytest.raises(UsageError, match=match):
            open_database(url)


def test_an_example_database_off_loopback_needs_its_host_allowed_by_name(tmp_path: Path):
    """Like every URL the tool touches: refused before anything connects, unless allowed."""
    for url, host in (("redis://:sekrit@10.9.8.7:6379/0", "10.9.8.7"),
                      ("github://owner/repo", "api.github.com")):
        with pytest.raises(UsageError, match=f"{host} is not on loopback: pass --allow-host "
                                             f"{host}") as refused:
            open_database(url)
        assert "sekrit" not in str(refused.value)
    # allowed by name, github:// gets past the rule (it reads the artifact only when asked)
    assert open_database("github://owner/repo", allow_hosts=["API.github.com"]) is not None
    assert open_database(str(tmp_path / "db"), allow_hosts=()) is not None   # local


def test_redis_that_does_not_answer_is_one_line_naming_the_option():
    from chaos.errors import InfrastructureError

    with pytest.raises(InfrastructureError, match="--example-db .*did not answer") as raised:
        open_database("redis://:sekrit@127.0.0.1:9/0")
    assert "sekrit" not in str(raised.value)


def test_saved_failures_round_trip_per_target_and_stale_entries_go():
    db = InMemoryExampleDatabase()
    saved = SavedFailures(db, TARGET)
    other = SavedFailures(db, {"kind": "reference", "bugs": []})
    scenario = playbook()[0][1]
    saved.save(INVARIANT, scenario)
    db.save(saved.key, b"not json")
    assert saved.fetch() == [(INVARIANT, scenario)]
    assert list(db.fetch(saved.key)) == [SavedFailures._value(INVARIANT, scenario)]
    assert other.fetch() == []
    assert database_key(TARGET) == database_key(dict(reversed(TARGET.items())))


def test_a_failure_one_search_saved_is_the_next_search_s_first_example():
    db = InMemoryExampleDatabase()
    first = search(Target(), scenarios(), examples=60, seed=1, confirm_runs=2,
                   saved=SavedFailures(db, TARGET))
    assert first.findings and first.first_failure.phase == "search"
    kept = SavedFailures(db, TARGET).fetch()
    assert {(INVARIANT, f.scenario) for f in first.findings} <= set(kept)

    second = search(Target(), scenarios(), examples=60, seed=2, confirm_runs=2,
                    saved=SavedFailures(db, TARGET))
    assert (second.first_failure.example, second.first_failure.phase) == (1, "replay")
    assert second.by_phase["replay"] >= 1

    fixed = Target(lambda call: False)    # the bug is fixed: its saved failures are deleted
    search(fixed, scenarios(), examples=5, seed=3, saved=SavedFailures(db, TARGET))
    assert SavedFailures(db, TARGET).fetch() == []


# -- merge ------------------------------------------------------------------------------------

def _histogram(*seconds: float) -> str:
    d = Durations()
    for s in seconds:
        d.add(s)
    return d.encoded()


def _report(found: list[dict], latencies: list[float], **extra) -> dict:
    return {"verdict": "fail" if found else "pass", "target": TARGET, "examples": 10,
            "examples_by_phase": {"search": 9, "load": 1}, "max_examples": 10,
            "seconds": 5.0, "failures": found,
            "invariants": {INVARIANT: "fail" if found else "pass"},
            "http": {"requests": len(latencies), "failed": 1},
            "thresholds": {"http-error-rate": {"errors": 1, "requests": len(latencies),
                                               "limit": 0.01},
                           "http-p95": {"limit_ms": 100.0}},
            "concurrency": {"requested": 50, "waves_measured": 2},
            "histograms": {"latencies": _histogram(*latencies),
                           "judged_latencies": _histogram(*latencies), "skews": ""},
            **extra}


def _finding(reproduced: str, failing: int = 1, status: str = "FAILED") -> dict:
    return {"invariant": INVARIANT, "shape": "2x deliver", "status": status,
            "reproduced": reproduced, "failing_examples": failing, "requests": 2,
            "violations": [{"rows": [1]}], "case": None}


def test_merged_thresholds_are_judged_as_a_run_judges_them():
    """The shards' counts summed, the 5xx ahead of their payment included, by the run's
    own Thresholds."""
    one, two = _report([], [0.010] * 50), _report([], [0.010] * 50)
    for shard, ahead in ((one, 2), (two, 3)):
        shard["thresholds"]["http-error-rate"].update(left_out_under_fault=4,
                                                      ahead_of_payment_5xx=ahead)
    rate = merge_reports([one, two])["thresholds"]["http-error-rate"]
    assert (rate["errors"], rate["requests"], rate["value"]) == (2, 100, 0.02)
    assert rate["verdict"] == "fail" and rate["limit"] == 0.01
    assert (rate["left_out_under_fault"], rate["ahead_of_payment_5xx"]) == (8, 5)


def test_a_bug_two_shards_found_is_counted_once_with_their_runs_added():
    [bug] = merge_findings([_finding("4/5", 3), _finding("5/5", 2)])
    assert (bug["reproduced"], bug["failing_examples"], bug["status"]) == ("9/10", 5, "FAILED")
    assert merge_findings([_finding("0/3", status="FLAKY"), _finding("2/3")])[0]["status"] \
        == "FAILED"


def test_merged_totals_are_sums_and_the_p95_is_that_of_every_request():
    fast = [0.010] * 95
    slow = [0.200] * 95
    merged = merge_reports([_report([_finding("5/5")], fast), _report([_finding("3/5")], slow)])
    assert merged["examples"] == 20 and merged["examples_by_phase"] == {"search": 18, "load": 2}
    assert len(merged["failures"]) == 1 and merged["invariants"][INVARIANT] == "fail"
    assert merged["http"]["requests"] == 190 and merged["http"]["failed"] == 2
    every = Durations.decoded(_histogram(*fast, *slow))
    assert merged["http"]["p95_ms"] == round(every.percentile(95) * 1000, 2)
    assert merged["http"]["p95_ms"] > 150   # an average of the shards' p95s would be ~105
    assert merged["thresholds"]["http-p95"]["verdict"] == "fail"
    assert merged["thresholds"]["http-error-rate"]["requests"] == 190
    assert merged["thresholds"]["http-p95"]["requests"] == 190
    assert merged["verdict"] == "fail" and merged["seconds"] == 5.0
    assert [m["report"] for m in merged["merged"]] == ["#1", "#2"]


def test_reports_of_two_targets_or_without_histograms_do_not_merge():
    other = _report([], [0.01]) | {"target": {"kind": "reference", "bugs": []}}
    with pytest.raises(NotMergeable, match="another target"):
        merge_reports([_report([], [0.01]), other])
    no_key = _report([], [0.01])
    del no_key["histograms"]
    with pytest.raises(NotMergeable, match="no histograms"):
        merge_reports([no_key])
    # a shard stopped before it measured anything merges as no requests
    stopped = _report([], []) | {"histograms": {}, "verdict": "error", "error": "interrupted"}
    merged = merge_reports([_report([], [0.01, 0.02]), stopped])
    assert merged["http"]["requests"] == 2 and merged["verdict"] == "error"


def _ops(latencies: list[float]) -> list[Op]:
    return [Op(index=n, kind="deliver", door="target", method="POST", path="/webhook",
               wave=None, step=None, start=0.0, end=latency, status=200,
               outcome=Outcome.OK, body="", ref=DeliveryRef(copy=0))
            for n, latency in enumerate(latencies)]


def test_load_summaries_merge_into_the_summary_of_all_their_requests():
    parts = [[0.001 * (n + 1) for n in range(300)], [0.5 + 0.002 * n for n in range(200)]]
    limits = thresholds([])
    summaries, everything = [], Metrics()
    for part in parts:
        metrics = Metrics()
        for op in _ops(part):
            metrics.add(op)
            everything.add(op)
        summaries.append(load_data(metrics=metrics, seconds=10.0, thresholds=limits,
                                   tallies={}, base={"target": TARGET}))
    merged = merge_summaries(summaries, ["a.json", "b.json"])
    whole = load_data(metrics=everything, seconds=10.0, thresholds=limits, tallies={},
                      base={"target": TARGET})
    assert merged["http"]["all"]["requests"] == 500 == sum(
        s["http"]["all"]["requests"] for s in summaries)
    assert merged["http"]["all"]["p95_ms"] == whole["http"]["all"]["p95_ms"]
    assert merged["thresholds"] == whole["thresholds"]
    assert json.loads(json.dumps(merged))["merged"][1]["summary"] == "b.json"


class _Failing(InMemoryExampleDatabase):
    """A store that goes away once the search saves its first failure."""

    def save(self, key: bytes, value: bytes) -> None:
        if key.endswith(b".failures"):
            raise ConnectionResetError("Connection reset by peer")
        super().save(key, value)


def test_an_example_database_that_fails_mid_search_ends_it_in_error_in_one_line():
    from chaos.errors import InfrastructureError
    from chaos.exampledb import Guarded

    outcome = search(Target(), scenarios(), examples=30, seed=1, confirm_runs=1,
                     saved=SavedFailures(Guarded(_Failing()), TARGET))
    assert isinstance(outcome.error, InfrastructureError)
    assert "the example database failed" in str(outcome.error)
    assert outcome.stopped == "error" and outcome.findings   # what it found still reported


@pytest.mark.parametrize(("argv", "match"), [
    (["run", "--workers", "2", "--shard", "1/2"], "drop --shard"),
    (["run", "--workers", "2", "--reference-port", "5999"], "drop --reference-port"),
    (["run", "--workers", "2", "--log-json", "log.jsonl"], "drop --log-json"),
    (["run", "--workers", "0"], "outside 1..64"),
    (["run", "--example-db", "ftp://x"], "unknown scheme"),
    (["load", "--vus", "2", "--shard", "1/3"], "leave some shards without a VU"),
])
def test_sharding_options_that_cannot_work_are_refused_before_anything_starts(
        argv: list[str], match: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    from chaos.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_merge_refuses_what_is_not_a_shard_report_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from chaos.cli import main

    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "case.json").write_text(json.dumps({"format": 2}))
    (tmp_path / "run.json").write_text(json.dumps(_report([], [0.01])))
    (tmp_path / "load.json").write_text(json.dumps({"kind": "load", "verdict": "pass"}))
    for argv, match in (([str(tmp_path / "missing.json")], "cannot read"),
                        ([str(tmp_path / "notjson.json")], "is not JSON"),
                        ([str(tmp_path / "case.json")], "is not a report"),
                        ([str(tmp_path / "run.json"), str(tmp_path / "load.json")],
                         "merge each kind on its own"),
                        ([str(tmp_path / "run.json"), "--cases", str(tmp_path / "nope")],
                         "is not a folder"),
                        ([str(tmp_path / "load.json"), "--junit", str(tmp_path / "j.xml")],
                         "are for run reports")):
        assert main(["merge", *argv, "--report", str(tmp_path / "out.json")]) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_a_failure_another_shard_saves_meanwhile_is_replayed_while_drawing():
    from tests.test_search import result

    db = InMemoryExampleDatabase()
    other_shard = SavedFailures(db, TARGET)
    theirs = playbook()[0][1]          # the story the other shard found failing
    calls = []

    def run_example(scenario):
        calls.append(scenario)
        if len(calls) == 3:            # the other shard saves it while this one draws
            other_shard.save(INVARIANT, theirs)
        return result(scenario, broke=scenario == theirs)

    outcome = search(run_example, scenarios(), examples=10, seed=4, confirm_runs=1,
                     saved=SavedFailures(db, TARGET), poll_seconds=0.0)
    assert outcome.by_phase["replay"] >= 1
    assert calls.index(theirs) == 3     # the very next example once it was saved
    assert outcome.first_failure.phase == "replay"
    assert [f.scenario for f in outcome.findings] == [theirs]


def test_load_workers_split_their_shard_s_vus_and_all_shards_cover_every_vu():
    from chaos.load.workers import worker_share

    vus = range(60)
    played = []
    for shard in range(3):              # --shard 1/3 .. 3/3, each with --workers 2
        for worker in range(2):
            mine, of = worker_share(Shard(shard + 1, 3).share, worker, 2)
            played += [v for v in vus if v % of == mine]
    assert sorted(played) == list(vus)
    assert worker_share((0, 1), 1, 4) == (1, 4)   # no shard: the workers alone, as before
