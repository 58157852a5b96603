"""The regression corpus: case files are readable JSON that say what a
replay must show, the same failure always lands in the same file, and a bad
file is refused with a message that names it (exit 2, one line, nothing sent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.report.corpus import (
    BREAKS,
    HOLDS,
    corpus_files,
    expectations,
    load_case,
    save_case,
)
from strategies import Buyer, Delivery, Scenario
from tests.helpers import run_tool

SCENARIO = Scenario(buyers=(Buyer(),), waves=((Delivery(0), Delivery(0, copy=1)),))


def save(directory: Path, *, bugs=("no-dedup",), seed=1):
    return save_case(invariant="one-ticket-set-per-payment",
                     target={"kind": "reference", "bugs": list(bugs)}, seed=seed,
                     scenario=SCENARIO, found={"status": "FAILED", "reproduced": "5/5"},
                     directory=directory)


def test_a_case_from_a_deliberate_bug_expects_it_caught_and_the_correct_service_to_pass():
    catch, correct = expectations("one-ticket-set-per-payment",
                                  {"kind": "reference", "bugs": ["no-dedup"]})
    assert (catch.bugs, catch.outcome, catch.invariant) == (("no-dedup",), BREAKS,
                                                            "one-ticket-set-per-payment")
    assert (correct.bugs, correct.outcome, correct.invariant) == ((), HOLDS, None)
    assert catch.met(1, 3) and not catch.met(0, 3)
    assert correct.met(0, 3) and not correct.met(1, 3)


def test_a_case_from_a_real_bug_expects_it_fixed():
    [fixed] = expectations("no-lost-payment", {"kind": "reference", "bugs": []})
    assert (fixed.bugs, fixed.outcome) == ((), HOLDS)


def test_a_case_round_trips_and_the_same_failure_keeps_its_file(tmp_path: Path):
    path, new = save(tmp_path)
    assert new and path.name.startswith("one-ticket-set-per-payment-")
    case = load_case(path)
    assert case.scenario == SCENARIO and case.seed == 1 and case.found["reproduced"] == "5/5"
    assert [e.outcome for e in case.expect] == [BREAKS, HOLDS]
    before = path.read_text()
    again, new = save(tmp_path, seed=2)            # found again by another run
    assert again == path and not new and path.read_text() == before
    other, new = save(tmp_path, bugs=())           # another target: another case
    assert other != path and new
    assert corpus_files([tmp_path]) == sorted([path, other])


def test_a_format_1_case_still_loads_with_expectations_derived(tmp_path: Path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": 1, "invariant": "one-ticket-set-per-payment",
                                "target": {"kind": "reference", "bugs": ["no-dedup"]},
                                "seed": 0, "scenario": SCENARIO.to_data()}))
    assert [e.outcome for e in load_case(path).expect] == [BREAKS, HOLDS]


@pytest.mark.parametrize("content, words", [
    ("not json", "is not JSON"),
    ('{"format": 99}', "is not a chaos case file"),
    ('{"format": 2, "invariant": "x", "target": {}, "scenario": {"buyers": []}}', "scenario:"),
    ('{"format": 2, "invariant": "x", "target": {}, "scenario": %s, "expect": []}',
     '"expect" must be a non-empty list'),
    ('{"format": 2, "invariant": "x", "target": {}, "scenario": %s, '
     '"expect": [{"outcome": "maybe"}]}', "outcome 'maybe' must be"),
    ('{"format": 2, "invariant": "x", "target": {}, "scenario": %s, '
     '"expect": [{"outcome": "breaks"}]}', 'must name its "invariant"'),
])
def test_bad_case_files_are_refused_with_the_reason(tmp_path: Path, content: str, words: str):
    path = tmp_path / "bad.json"
    path.write_text(content.replace("%s", json.dumps(SCENARIO.to_data())))
    with pytest.raises(ValueError, match="bad.json") as info:
        load_case(path)
    assert words in str(info.value)


def test_replay_refuses_a_bad_case_file_before_starting_anything(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"format": 99}')
    result = run_tool("replay", "--expect", "bad.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "bad.json is not a chaos case file (format 2): pass a file written by a chaos run" \
        in result.stderr


@pytest.mark.parametrize("args, env, words", [
    (["replay", "empty-dir"], {}, "no case files (*.json) in empty-dir"),
    (["--junit", "."], {}, "--junit . is a directory"),
    (["--examples", "1"], {"CHAOS_WEBHOOK_SECRET": "nope"}, "CHAOS_WEBHOOK_SECRET must be"),
    (["--examples", "1"], {"CHAOS_STRIPE_API_KEY": "sk_live_x"}, "is a live key"),
])
def test_bad_output_and_secret_settings_are_one_line_exit_2(tmp_path: Path, monkeypatch, args,
                                                             env, words):
    (tmp_path / "empty-dir").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run_tool(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_groups_checks_by_bugs_and_judges_each_expectation(tmp_path: Path):
    """The replay's bookkeeping, without services: a runner whose service breaks the
    invariant exactly when ``no-dedup`` is on (as the real one does)."""
    import contextlib
    from types import SimpleNamespace

    from chaos.replay import checks_of, render, run_checks

    started: list[tuple[str, ...]] = []

    @contextlib.contextmanager
    def start(bugs):
        started.append(bugs)
        broken = [SimpleNamespace(invariant="one-ticket-set-per-payment",
                                  to_data=lambda: {"message": "two sets", "rows": []})]
        yield SimpleNamespace(run_example=lambda scenario: SimpleNamespace(
            violations=broken if "no-dedup" in bugs else []))

    caught = load_case(save(tmp_path / "a")[0])             # expects: breaks with, holds without
    fixed = load_case(save(tmp_path / "b", bugs=())[0])     # expects: holds without bugs
    checks = checks_of([caught, fixed], expect=True)
    run_checks(checks, runs=2, start=start, log=SimpleNamespace(info=lambda *a, **k: None))
    assert started == [("no-dedup",), ()]                   # one service start per bug set
    assert [[(c.broken, c.runs, c.passed) for c in per_case] for per_case in checks] == \
        [[(2, 2, True), (0, 2, True)], [(0, 2, True)]]
    text, failed = render(checks)
    assert failed == 0 and text.endswith("2 of 2 cases passed")

    again = checks_of([caught], expect=False)               # "does it still break?": yes
    run_checks(again, runs=1, start=start, log=SimpleNamespace(info=lambda *a, **k: None))
    text, failed = render(again)
    assert failed == 1 and "broke in 1 of 1 runs" in text and "broken: two sets" in text


def test_replaying_a_report_offers_the_cases_it_saved(tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch):
    from chaos import cli

    monkeypatch.chdir(tmp_path)     # the report names its cases as the run wrote them
    case, _ = save(Path("chaos-failures"))
    report = {"verdict": "fail", "examples": 9, "failures": [
        {"invariant": "one-ticket-set-per-payment", "status": "FAILED", "case": str(case)},
        {"invariant": "refund-voids-tickets", "status": "FLAKY", "case": None}]}
    Path("chaos-report.json").write_text(json.dumps(report))
    assert cli.main(["replay", "chaos-report.json"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("payment-chaos: error: chaos-report.json is a chaos run's report, not a "
                    f"case: replay the case it saved: python -m chaos replay {case}")

    Path("empty.json").write_text(json.dumps({**report, "failures": []}))
    assert cli.main(["replay", "empty.json"]) == 2
    assert "it saved no case (no confirmed failure)" in capsys.readouterr().err
