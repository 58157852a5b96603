"""The run's event hook (chaos.events): the search tells each phase and example, and the
Watch that draws the progress line and writes the log keeps no example it was told of.

No network: the search runs over the synthetic target of test_search.py."""

from __future__ import annotations

import gc
import io
import json
import weakref
from collections import Counter
from pathlib import Path

from chaos.events import LOAD, Silent
from chaos.example import ExampleResult
from chaos.report import Progress, Watch
from chaos.search import Finding, search
from strategies import playbook, scenarios
from tests.test_search import Target, result


class Recorder(Silent):
    """Every event, in order, as (what, phase)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def phase_started(self, phase: str) -> None:
        self.events.append(("phase", phase))

    def example_done(self, result: ExampleResult, phase: str) -> None:
        self.events.append(("example", phase))


class Log:
    """A logger that keeps what it is told (structlog's ``info`` / ``debug`` shape)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def info(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))

    debug = info


def test_the_search_tells_every_example_with_the_phase_that_ran_it():
    recorder = Recorder()
    stories = [scenario for _, scenario in playbook()][:2]
    outcome = search(Target(), scenarios(), examples=30, seed=1, confirm_runs=2,
                     playbook=stories, events=recorder)
    told = Counter(phase for what, phase in recorder.events if what == "example")
    assert sum(told.values()) == outcome.examples > 0
    assert told == Counter(outcome.by_phase)
    assert {"playbook", "search", "minimize", "confirm"} <= set(told)


def test_each_phase_is_announced_before_its_first_example_and_not_repeated_in_a_row():
    recorder = Recorder()
    search(Target(), scenarios(), examples=30, seed=1, confirm_runs=2,
           playbook=[scenario for _, scenario in playbook()][:1], events=recorder)
    phases = [phase for what, phase in recorder.events if what == "phase"]
    assert phases[:2] == ["playbook", "search"]
    assert set(phases[2:]) == {"minimize", "confirm"}
    assert all(a != b for a, b in zip(phases, phases[1:], strict=False))
    current = None
    for what, phase in recorder.events:
        if what == "phase":
            current = phase
        else:
            assert phase == current     # no example outside the phase last announced


def test_without_events_the_search_runs_the_same():
    told, silent = Target(), Target()
    a = search(told, scenarios(), examples=15, seed=2, confirm_runs=1, events=Recorder())
    b = search(silent, scenarios(), examples=15, seed=2, confirm_runs=1)
    assert told.seen == silent.seen and a.by_phase == b.by_phase


def test_the_watch_keeps_no_example_it_was_told_of():
    """Memory stays flat over a long run: after an example (failing ones included) the
    Watch holds no reference to it, its scenario or its history."""
    watch = Watch(Progress(io.StringIO(), enabled=False), Log())
    scenario = next(iter(s for _, s in playbook()))
    failing = result(scenario, broke=True)
    refs = [weakref.ref(failing), weakref.ref(failing.history)]
    watch.phase_started("search")
    watch.example_done(failing, "search")
    del failing
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert watch.progress.examples == 1 and watch.progress.broken == ["one-ticket-set-per-payment"]


def test_the_watch_labels_the_load_wave_and_logs_the_target_and_each_finding():
    out = io.StringIO()
    log = Log()
    watch = Watch(Progress(out, enabled=True), log)
    watch.phase_started(LOAD)
    assert watch.progress.current_phase == "load wave"
    watch.phase_started("confirm")
    assert watch.progress.current_phase == "confirm"
    scenario = next(iter(s for _, s in playbook()))
    finding = Finding(invariant="one-ticket-set-per-payment", scenario=scenario, violations=[],
                      reproduced=2, runs=3)
    watch.finding(finding, phase="search", case=Path("chaos-failures/x.json"), new_case=True)
    assert log.lines == [("finding", {
        "invariant": "one-ticket-set-per-payment", "status": "FAILED", "reproduced": "2/3",
        "phase": "search", "requests": scenario.requests, "case": "chaos-failures/x.json",
        "new_case": True})]
    watch.run_ended()
    assert out.getvalue().endswith("\r\x1b[2K")   # the line cleared before the summary


def test_a_watch_made_before_the_log_is_set_up_writes_to_the_log_the_run_sets_up(tmp_path: Path):
    """The command line makes its Watch before the run configures logging (the run checks
    the log's path first): the Watch's lines must still reach the JSON log."""
    from chaos.log import close, configure
    from chaos.target import Target

    watch = Watch(Progress(io.StringIO(), enabled=False))
    path = tmp_path / "log.jsonl"
    configure(json_path=path)
    try:
        watch.target_ready(Target(base_url="http://127.0.0.1:1", webhook_secret="whsec_x",
                                  anon_key="anon_x"), "http://127.0.0.1:2")
    finally:
        close()
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert (line["event"], line["command"], line["stripe_url"]) == \
        ("target.ready", "run", "http://127.0.0.1:2")
