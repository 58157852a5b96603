"""A run as a library: ``chaos.lifecycle.run(RunOptions(...), events=...) -> Report``.

Scenario: a program (a notebook, a CI script, another test harness) drives a run without
the command line. What must hold: bad options are a UsageError before anything starts;
a run against the reference service with a catalogue bug returns the report it also
wrote, saves the confirmed finding as a case, and tells its observer every step, in
order (the target first, the load wave's phase before its example, each finding, the end).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from chaos.errors import UsageError
from chaos.events import Silent
from chaos.example import ExampleResult
from chaos.lifecycle import ReplayOptions, RunOptions, replay, run
from chaos.search import Finding
from chaos.target import Target


class Recorder(Silent):
    """What a run told, in order."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []
        self.findings: list[tuple[Finding, Path | None]] = []

    def target_ready(self, target: Target, stripe_url: str) -> None:
        self.told.append(("ready", target.base_url))

    def phase_started(self, phase: str) -> None:
        self.told.append(("phase", phase))

    def example_done(self, result: ExampleResult, phase: str) -> None:
        self.told.append(("example", phase))

    def finding(self, finding: Finding, *, phase: str, case: Path | None,
                new_case: bool) -> None:
        self.told.append(("finding", finding.invariant))
        self.findings.append((finding, case))

    def run_ended(self) -> None:
        self.told.append(("ended", ""))


def test_an_unwritable_report_is_a_usage_error_before_anything_starts(tmp_path: Path):
    recorder = Recorder()
    with pytest.raises(UsageError, match="--report .* the directory .* does not exist"):
        run(RunOptions(report=tmp_path / "no" / "r.json"), events=recorder)
    assert recorder.told == [] and list(tmp_path.iterdir()) == []


def test_an_unknown_bug_and_a_missing_known_case_are_usage_errors(tmp_path: Path):
    options = RunOptions(report=tmp_path / "r.json", corpus=tmp_path / "corpus")
    with pytest.raises(UsageError, match="unknown bug 'no-such-bug'"):
        run(replace(options, bugs=("no-such-bug",)))
    with pytest.raises(UsageError, match="--known .*nothing.json: no such file"):
        run(replace(options, known=(tmp_path / "nothing.json",)))
    assert not (tmp_path / "r.json").exists()


def test_a_replay_of_no_cases_or_of_a_report_is_a_usage_error_naming_the_fix(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no case files \(\*\.json\) in .*empty: pass files"):
        replay(ReplayOptions(files=(tmp_path / "empty",)))
    case = tmp_path / "corpus" / "case.json"
    case.parent.mkdir()
    case.write_text("{}")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"verdict": "fail", "failures": [{"case": str(case)}]}))
    with pytest.raises(UsageError) as raised:
        replay(ReplayOptions(files=(report,), invocation="my-harness"))
    assert str(raised.value) == (f"{report} is a chaos run's report, not a case: replay the "
                                 f"case it saved: my-harness replay {case}")


def test_config_options_that_only_fit_the_reference_service_are_refused(tmp_path: Path):
    from chaos.lifecycle import load_config

    with pytest.raises(UsageError, match="--bug switches on bugs of the reference service"):
        load_config("chaos.toml", bugs=("no-dedup",))
    with pytest.raises(UsageError, match="--stripe-port is for the reference run; .* "
                                         "--set stripe.port=N"):
        load_config("chaos.toml", stripe_port=12111)


@pytest.mark.e2e
def test_a_library_run_returns_the_report_it_wrote_and_tells_every_step(tmp_path: Path,
                                                                         server_url: str):
    recorder = Recorder()
    # a seed whose 20 draws deliver a paid completion twice (seeds 4 and 7 do; 5 does not)
    options = RunOptions(examples=20, seed=4, confirm_runs=2, concurrency=10,
                         bugs=("no-dedup",), database_url=server_url, playbook=False,
                         report=tmp_path / "r.json", corpus=tmp_path / "corpus",
                         invocation="my-harness")
    report = run(options, events=recorder)
    assert report.verdict == "fail"
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == json.loads(json.dumps(report.to_data()))
    assert written["examples"] == sum(1 for what, _ in recorder.told if what == "example")

    told = recorder.told
    assert told[0][0] == "ready" and told[0][1].startswith("http://127.0.0.1:")
    assert told[1:3] == [("phase", "load"), ("example", "load")]
    assert told[3] == ("phase", "search") and told[-1] == ("ended", "")
    assert [what for what, _ in told].count("ended") == 1
    findings = [name for what, name in told if what == "finding"]
    assert "one-ticket-set-per-payment" in findings
    assert findings == [f["invariant"] for f in written["failures"]]
    for finding, case in recorder.findings:
        if finding.status == "FAILED":
            assert case is not None and case.parent == tmp_path / "corpus" and case.is_file()
    replays = [f["replay"] for f in written["failures"] if f["status"] == "FAILED"]
    assert replays and all(r.startswith("my-harness replay ") for r in replays)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "r.json"]
