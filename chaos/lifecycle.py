"""A run, from start to verdict: the one home of ``payment-chaos run``, callable as a library.

    report = run(RunOptions(examples=50, bugs=("no-dedup",)))

:func:`run` is one function over named steps, in the order a run takes them:

1. **check**: output paths writable, the target's secrets well formed, the
   bugs known, the database URL a loopback PostgreSQL one; nothing starts
   before these hold (a :class:`~chaos.errors.UsageError` otherwise).
2. **start**: the target's world (``chaos.run.reference_run`` or
   ``configured_run``): PostgreSQL, the fake Stripe, the reference service.
3. **load wave**: ``--concurrency`` paid buyers delivered in one wave.
4. **search** (``chaos.search``): the playbook, Hypothesis' draws, minimizing,
   confirming; its findings, and the load wave's if it broke an invariant the
   search did not.
5. **record**: each FAILED finding saved as a case in the corpus.
6. **judge**: HTTP figures, thresholds, notes, the verdict.
7. **finish**, whatever happened: the report (JSON, JUnit, HTML) written whole
   even when a stop signal arrives meanwhile (:func:`chaos.shutdown.deferred`),
   the log closed; everything started is stopped by the ``with`` blocks.

Errors are raised as :class:`~chaos.errors.ChaosError` subclasses: those of
step 1 before anything is written, later ones once the report saying so is
written (from the ``run.start`` log line on, a report is always written). A
stop signal (under
:func:`chaos.shutdown.handled`) ends the run early but still returns its
report (``stopped`` names the signal); the caller re-raises
``chaos.shutdown.received()`` once it has shown it, as the command line does.
Progress and logging go through ``events`` (:class:`chaos.events.RunEvents`).

:func:`replay` (``ReplayOptions`` -> ``Replayed``) is the same for
``payment-chaos replay``: saved cases re-run, or their expectations checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos import report as reports
from chaos.config import Config, load
from chaos.database import check_database_url
from chaos.errors import ChaosError, UsageError
from chaos.events import LOAD, RunEvents, Silent
from chaos.example import ExampleResult, OutOfTime
from chaos.exampledb import SavedFailures, open_database
from chaos.log import close, configure, get_logger, redactor
from chaos.observation import endpoints_called
from chaos.plan import confirming_event, drawn_event_types
from chaos.reference.bugs import parse_bugs
from chaos.replay import checks_of, render, run_checks
from chaos.report.corpus import Case, ReportNotCase, corpus_files, known_cases, load_case
from chaos.report.outputs import check_writable, write_outputs
from chaos.run import Runner, configured_run, reference_run
from chaos.safety import check_database_host, check_stripe_key
from chaos.search import PROFILES, Finding, KnownBug, SearchResult, search
from chaos.shard import Shard
from chaos.shutdown import deferred, received
from chaos.target import PythonInvariant
from chaos.thresholds import Thresholds
from strategies import busy_night, playbook, scenarios


@dataclass(frozen=True)
class RunOptions:
    """What a run does: the command line's ``run`` options, as data (defaults alike)."""

    #: Scenarios Hypothesis may draw (None: the profile's count).
    examples: int | None = None
    profile: str = "default"
    #: Tries per example once a failure was seen (races).
    tries: int = 3
    confirm_runs: int = 5
    max_seconds: float = 3600.0
    shrink_seconds: float = 20.0
    #: Play the classic failure stories before the search draws its own.
    playbook: bool = True
    max_error_rate: float = 0.01
    max_p95: float = 5.0
    concurrency: int = 50
    #: Hypothesis seed (None: a fresh one, except for the ``ci`` and ``dev`` profiles).
    seed: int | None = None
    report: Path = Path("chaos-report.json")
    corpus: Path = Path("chaos-failures")
    #: Cases (files or folders) of bugs already known.
    known: tuple[Path, ...] = ()
    junit: Path | None = None
    html: Path | None = None
    #: Bugs of the reference service to switch on (none with a config).
    bugs: tuple[str, ...] = ()
    #: PostgreSQL for the reference service (None: an embedded throwaway server).
    database_url: str | None = None
    request_timeout: float = 10.0
    example_timeout: float = 60.0
    reference_port: int = 0
    stripe_port: int = 0
    log_json: Path | None = None
    verbose: bool = False
    #: How the user runs the tool, for the replay commands the report prints.
    invocation: str = "python -m chaos"
    #: A fake Stripe already running (the pytest plugin's ``fake_stripe_server``) that the
    #: config's target talks to: none is started (only with a config).
    stripe_url: str | None = None
    #: This run's part of the search (``--shard I/N``): its playbook stories and seed.
    shard: Shard = Shard()
    #: Hypothesis' example database (``--example-db URL``: chaos.exampledb), None: none.
    example_db: str | None = None
    #: Hosts off loopback the run may reach (``--allow-host``): the example database's.
    allow_hosts: tuple[str, ...] = ()


def run(options: RunOptions, *, config: Config | None = None,
        events: RunEvents | None = None) -> reports.Report:
    """Run the load wave and the search against the reference service (or ``config``'s
    target); return the report, also written to ``options.report`` (see the module
    docstring for the steps, errors and signals)."""
    _check(options, config)
    database = open_database(options.example_db, allow_hosts=_allowed(options, config)) \
        if options.example_db else None
    configure(verbose=options.verbose, json_path=options.log_json)
    log = get_logger(command="run")
    watch: RunEvents = events if events is not None else Silent()
    bugs = parse_bugs(options.bugs)
    if options.database_url and config is None:
        check_database_url(options.database_url)
        check_database_host(options.database_url, what="--database-url / DATABASE_URL")
    # ci is derandomized (without --seed it draws the same scenarios every run); dev keeps
    # Hypothesis' example database, which Hypothesis does not use under a fixed seed
    seed = options.seed if options.seed is not None or options.profile in ("ci", "dev") \
        else secrets.randbelow(2**32)
    seed = options.shard.seed(seed)   # a part of a run draws its own scenarios
    target = {"kind": "reference", "bugs": sorted(bugs)} if config is None \
        else config.report_target()
    report = reports.Report(target=target, seed=seed, requested_concurrency=options.concurrency,
                            profile=options.profile,
                            shard=None if options.shard.whole else str(options.shard),
                            example_db=redactor.text(options.example_db)
                            if options.example_db else None,
                            extra_invariants=[i.name for i in config.target.invariants]
                            if config is not None else [])
    if config is not None:
        report.promises = config.target.promises
        report.python_invariants = [i.name for i in config.target.invariants
                                    if isinstance(i, PythonInvariant)]
    saved = SavedFailures(database, target) if database is not None else None
    known = [KnownBug(c.invariant, c.scenario, str(c.path))
             for c in _known_cases(options, target)]
    started = time.monotonic()
    deadline = started + options.max_seconds
    start = configured_run(config, concurrency=options.concurrency,
                           request_timeout=options.request_timeout,
                           example_timeout=options.example_timeout,
                           stripe_url=options.stripe_url) if config is not None else \
        reference_run(bugs=bugs, database_url=options.database_url,
                      reference_port=options.reference_port, stripe_port=options.stripe_port,
                      concurrency=options.concurrency, request_timeout=options.request_timeout,
                      example_timeout=options.example_timeout)
    try:   # from the first line of the log on, whatever happens, the report is written
        log.info("run.start", bugs=list(options.bugs), examples=options.examples,
                 seed=options.seed, concurrency=options.concurrency)
        with start as runner:
            runner.deadline = deadline
            if not options.shard.whole:   # the shards' event ids and cases never meet
                runner.run_id = f"{runner.run_id}s{options.shard.index}"
            report.run_id = runner.run_id
            report.database = runner.database
            watch.target_ready(runner.target, runner.stripe_url)
            load = _load_wave(runner, options.concurrency, watch)
            if load is not None and load.violations:
                report.first_failure = _first_failure(0, time.monotonic() - started,
                                                      load.violations[0].invariant, "load")
            # faults go where the target calls Stripe (the load wave shows where)
            drawn = scenarios(swarm=True, event_types=drawn_event_types(
                config.target if config is not None else None),
                called_endpoints=endpoints_called(load.observation.stripe_calls)
                if load is not None else ())
            result = search(runner.run_example, drawn, examples=options.examples,
                            seed=seed, tries=options.tries,
                            confirm_runs=options.confirm_runs, profile=options.profile,
                            deadline=deadline, shrink_seconds=options.shrink_seconds,
                            playbook=options.shard.take([scenario for _, scenario in playbook(
                                confirming=confirming_event(runner.target))])
                            if options.playbook else (), known=known, events=watch,
                            saved=saved)
            _count(report, options, load, result, started)
            for finding, phase in _findings(load, result):
                report.findings.append(_record(finding, phase, target=target, seed=seed,
                                               options=options, watch=watch))
                report.found.append(finding)
            report.http = runner.stats.to_data()
            report.histograms = runner.stats.histograms()
            report.concurrency = runner.stats.concurrency_data()
            report.notes = runner.retried.notes()
            report.thresholds = runner.stats.thresholds(
                Thresholds(max_error_rate=options.max_error_rate, max_p95=options.max_p95))
            if result.error is not None:
                raise result.error
            report.verdict = "fail" if any(f["status"] == "FAILED" for f in report.findings) \
                or any(t["verdict"] == "fail" for t in report.thresholds.values()) else "pass"
            if result.interrupt is not None:
                raise result.interrupt
    except ChaosError as exc:
        report.error = str(exc)
        report.verdict = "error"
        raise
    except KeyboardInterrupt:
        if received() is None:      # Ctrl-C without the handlers (main() installs them)
            raise
        # a stop signal: the clean-up is done; reported below
    except Exception as exc:        # a bug of the tool's own: the report says so too
        report.error = f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
        report.verdict = "error"
        raise
    finally:
        with deferred():            # the report is written whole, whatever arrives meanwhile
            interrupt = received()
            if interrupt is not None:   # never "pass" after a signal: the run did not finish
                report.stopped = interrupt.name
                report.error = (f"interrupted by {interrupt.name}; the failures found until "
                                "then are reported, those not confirmed say so")
                report.verdict = "fail" if any(f["status"] == "FAILED"
                                               for f in report.findings) else "error"
            report.seconds = time.monotonic() - started
            report.write(options.report)
            _finish(report, options, watch, log)
    return report


# -- the steps -------------------------------------------------------------------------------

def _check(options: RunOptions, config: Config | None) -> None:
    """Refuse unwritable output paths and malformed target secrets before anything starts."""
    if options.stripe_url is not None and config is None:
        raise UsageError("stripe_url is for a run against your own service (a config): the "
                         "reference run starts its own fake Stripe; drop it")
    for path, option in ((options.report, "--report"), (options.junit, "--junit"),
                         (options.html, "--html"), (options.log_json, "--log-json")):
        check_writable(path, option)
    check_target_secrets()


def _allowed(options: RunOptions, config: Config | None) -> tuple[str, ...]:
    """The hosts off loopback this run may reach: ``--allow-host`` and the config's."""
    return (*options.allow_hosts, *(config.allow_hosts if config is not None else ()))


def check_run_options(options: RunOptions, config: Config | None = None) -> None:
    """What a run refuses before it starts (a UsageError, or an InfrastructureError when
    the example database does not answer), for a caller that starts the run elsewhere
    (``--workers``)."""
    _check(options, config)
    if options.example_db:
        open_database(options.example_db, allow_hosts=_allowed(options, config))


def known_for_workers(options: RunOptions, config: Config | None) -> list[Path]:
    """The ``--known`` cases of a ``--workers`` run's children: the run's own, and the
    corpus's cases of this target (a child's corpus is a folder of its own)."""
    target = {"kind": "reference", "bugs": sorted(parse_bugs(options.bugs))} \
        if config is None else config.report_target()
    return [*options.known, *(case.path for case in _known_cases(
        dataclasses.replace(options, known=()), target))]


def check_target_secrets() -> None:
    """``CHAOS_WEBHOOK_SECRET`` / ``CHAOS_STRIPE_API_KEY`` (and ``CHAOS_ANON_KEY``), when set,
    are what the reference service is started with (else fresh random ones): refuse
    malformed or live ones."""
    secret = os.environ.get("CHAOS_WEBHOOK_SECRET")
    if secret and not secret.startswith("whsec_"):
        raise UsageError("CHAOS_WEBHOOK_SECRET must be a webhook signing secret (whsec_...)")
    if os.environ.get("CHAOS_STRIPE_API_KEY"):
        check_stripe_key(os.environ["CHAOS_STRIPE_API_KEY"], what="CHAOS_STRIPE_API_KEY")


def _known_cases(options: RunOptions, target: dict[str, Any]) -> list[Any]:
    """``--known`` cases and the corpus's cases of ``target``; a bad ``--known`` is a
    UsageError."""
    missing = [str(path) for path in options.known if not path.exists()]
    if missing:
        raise UsageError(f"--known {missing[0]}: no such file or folder: pass a case file "
                         "written by a chaos run")
    try:
        return known_cases(options.known, corpus=options.corpus, target=target)
    except ValueError as exc:
        raise UsageError(f"--known: {exc}: pass a case file written by a chaos run") from None


def _load_wave(runner: Runner, concurrency: int, events: RunEvents) -> ExampleResult | None:
    """The example every run starts with; None when the deadline came first."""
    events.phase_started(LOAD)
    try:
        result = runner.run_example(busy_night(concurrency))
    except OutOfTime:
        return None
    events.example_done(result, LOAD)
    return result


def _count(report: reports.Report, options: RunOptions, load: ExampleResult | None,
           result: SearchResult, started: float) -> None:
    """The report's example counts, first failure and stop reason; a deadline that left no
    time for a single example is a UsageError."""
    report.examples_by_phase = {"load": int(load is not None), **result.by_phase}
    report.examples = sum(report.examples_by_phase.values())
    report.max_examples = options.examples or PROFILES[options.profile].max_examples
    first = result.first_failure
    if report.first_failure is None and first is not None:
        report.first_failure = _first_failure(first.example, first.at - started,
                                              first.invariant, first.phase)
    report.stopped = result.stopped if load is not None else "max-seconds"
    if load is None and not result.examples:
        raise UsageError(f"--max-seconds {options.max_seconds:g} ran out before the first "
                         f"example (start-up took {time.monotonic() - started:.1f} s): "
                         "raise it")


def _first_failure(example: int, seconds: float, invariant: str, phase: str) -> dict[str, Any]:
    """The report's ``first_failure``: the example that first broke an invariant (0 is the
    load wave; the search's examples count from 1, re-runs included, as ``examples`` does),
    seconds since the run started (start-up included), the invariant, the phase."""
    return {"example": example, "seconds": round(seconds, 2), "invariant": invariant,
            "phase": phase}


def _findings(load: ExampleResult | None, result: SearchResult) -> list[tuple[Finding, str]]:
    """The search's findings, then the load wave's when it broke an invariant the search
    did not (the load wave is not re-run: reproduced 1 of 1)."""
    findings = [(f, str(f.phase)) for f in result.findings]
    if load is not None and load.violations and not any(
            f.invariant == load.violations[0].invariant for f, _ in findings):
        v = load.violations[0]
        findings.append((Finding(invariant=v.invariant, scenario=load.scenario,
                                 violations=[x for x in load.violations
                                             if x.invariant == v.invariant],
                                 reproduced=1, runs=1, result=load), "load"))
    return findings


def _record(finding: Finding, phase: str, *, target: dict[str, Any], seed: int | None,
            options: RunOptions, watch: RunEvents) -> dict[str, Any]:
    """Save a confirmed finding in the corpus; return it as the report carries it.
    A FLAKY one (it did not fail again) is reported but kept out of the corpus."""
    path: Path | None = Path(finding.known) if finding.known else None
    new = False
    if finding.status == "FAILED" and path is None:
        path, new = reports.save_case(
            invariant=finding.invariant, target=target, seed=seed, scenario=finding.scenario,
            found={"status": finding.status,
                   "reproduced": f"{finding.reproduced}/{finding.runs}", "phase": phase,
                   "violations": [v.to_data() for v in finding.violations]},
            directory=options.corpus)
    replay = replay_command(options.invocation, path) if path else (
        f"not saved to the corpus: it did not fail again in {finding.runs} confirm runs")
    watch.finding(finding, phase=phase, case=path, new_case=new)
    # the rows, timeline and steps of one run: the one the finding's evidence came from
    history = finding.result.history if finding.result is not None else None
    return reports.finding_data(finding, replay=replay, phase=phase, case=path, history=history)


def replay_command(invocation: str, case: Path) -> str:
    """The line that replays ``case``, the way the user runs the tool (``invocation``)."""
    return f"{invocation} replay {shlex.quote(str(case))}"


def _finish(report: reports.Report, options: RunOptions, watch: RunEvents,
            log: Any) -> None:
    """Tell the watchers (a progress line is cleared); write JUnit and HTML next to the
    JSON report; close the log."""
    watch.run_ended()
    data = report.to_data()
    try:
        write_outputs(data, junit_path=options.junit, html_path=options.html)
    finally:
        log.info("run.end", verdict=data["verdict"], target=data["target"], seed=data["seed"],
                 examples=data["examples"], seconds=data["seconds"],
                 failures=len(data["failures"]), error=data.get("error"))
        close()


# -- config and replay -------------------------------------------------------------------------

def load_config(path: str, overrides: Sequence[str] = (), *, bugs: Sequence[str] = (),
                reference_port: int = 0, stripe_port: int = 0,
                database_url: str | None = None) -> Config:
    """The config at ``path`` with ``overrides`` (``--set KEY=VALUE``); refuses the options
    that only make sense for the reference service (a UsageError naming the fix)."""
    if bugs:
        raise UsageError("--bug switches on bugs of the reference service; with --config "
                         "the target is your own service: drop --bug")
    for option, port in (("--reference-port", reference_port), ("--stripe-port", stripe_port)):
        if port:
            raise UsageError(f"{option} is for the reference run; with --config set the fake "
                             "Stripe's port with --set stripe.port=N")
    if database_url and database_url != os.environ.get("DATABASE_URL"):  # typed, not the env's
        raise UsageError("--database-url is for the reference run; with --config the "
                         "database is your service's: --set database.url=URL")
    return load(path, overrides)


@dataclass(frozen=True)
class ReplayOptions:
    """What a replay does: the command line's ``replay`` options, as data."""

    #: Case files, or folders of them.
    files: tuple[Path, ...]
    #: Check each case's expectations (the regression suite) instead of re-running it
    #: against the target it names.
    expect: bool = False
    runs: int = 3
    log_json: Path | None = None
    database_url: str | None = None
    request_timeout: float = 10.0
    example_timeout: float = 60.0
    concurrency: int = 50
    reference_port: int = 0
    stripe_port: int = 0
    #: The config to replay config cases with (None: the one each case names).
    config: str | None = None
    overrides: tuple[str, ...] = ()
    invocation: str = "python -m chaos"


@dataclass(frozen=True)
class Replayed:
    """A replay's outcome: the text that tells it, and how many checks failed."""

    text: str
    failed: int


def replay(options: ReplayOptions, *, config: Config | None = None) -> Replayed:
    """Re-run saved cases (or check their expectations); a case that cannot be replayed,
    or options that do not fit the cases, are a UsageError before anything starts.
    ``config``: replay cases of a config's target against this one (a target described
    in Python, or a config loaded already) instead of loading the config each case names."""
    check_writable(options.log_json, "--log-json")
    check_target_secrets()
    configure(json_path=options.log_json)
    cases = _cases(options)
    kinds = {str(case.target.get("kind")) for case in cases}
    for case in cases:
        if case.target.get("kind") not in ("reference", "config"):
            raise UsageError(f"{case.path}: target kind {case.target.get('kind')!r} cannot be "
                             "replayed")
    if config is not None:
        if options.config is not None or options.overrides:
            raise UsageError("give the config once: as a Config, or as ReplayOptions.config "
                             "(with overrides)")
        if kinds != {"config"}:
            raise UsageError("these cases name the reference service: replay them without "
                             "a config")
    elif "config" in kinds:
        if len(kinds) > 1:
            raise UsageError("these cases name both the reference service and a config: "
                             "replay them separately")
        named = {str(case.target.get("config")) for case in cases}
        if options.config is None and len(named) > 1:
            raise UsageError(f"these cases name different configs ({', '.join(sorted(named))}): "
                             "replay them separately, or pick one with --config PATH")
        config = load_config(options.config or named.pop(), options.overrides,
                             reference_port=options.reference_port,
                             stripe_port=options.stripe_port, database_url=options.database_url)
    elif options.config is not None or options.overrides:
        option = "--config" if options.config is not None else "--set"
        raise UsageError(f"{option} is for cases found through a config; these cases name "
                         f"the reference service: drop {option}")
    if config is None and options.database_url:
        check_database_url(options.database_url)
        check_database_host(options.database_url, what="--database-url / DATABASE_URL")

    def start(bugs: tuple[str, ...]) -> contextlib.AbstractContextManager[Runner]:
        if config is not None:
            return configured_run(config, concurrency=options.concurrency,
                                  request_timeout=options.request_timeout,
                                  example_timeout=options.example_timeout)
        return reference_run(bugs=list(bugs), database_url=options.database_url,
                             concurrency=options.concurrency,
                             request_timeout=options.request_timeout,
                             example_timeout=options.example_timeout,
                             reference_port=options.reference_port,
                             stripe_port=options.stripe_port)

    checks = checks_of(cases, expect=options.expect)
    try:
        run_checks(checks, runs=options.runs, start=start, log=get_logger(command="replay"))
    finally:
        close()
    text, failed = render(checks)
    return Replayed(text, failed)


def _cases(options: ReplayOptions) -> list[Case]:
    """The cases ``options.files`` name; a file that is not one is a UsageError (a run's
    report: the command that replays the cases it saved)."""
    paths = corpus_files(options.files)
    if not paths:
        raise UsageError(f"no case files (*.json) in {', '.join(map(str, options.files))}: "
                         "pass files written by a chaos run")
    cases = []
    for path in paths:
        try:
            cases.append(load_case(path))
        except ReportNotCase as report:
            raise UsageError(_offer_cases(report, options.invocation)) from None
        except ValueError as exc:
            raise UsageError(f"{exc}: pass a file written by a chaos run") from None
    return cases


def _offer_cases(report: ReportNotCase, invocation: str) -> str:
    """The error for a report given to replay: the command that replays the cases it saved
    (those still on disk, where the run wrote them or next to the report)."""
    found = []
    for case in report.cases:
        for where in (Path(case), report.path.parent / case):
            if where.is_file():
                found.append(str(where))
                break
    if found:
        return (f"{report}: replay the {'case' if len(found) == 1 else f'{len(found)} cases'} "
                f"it saved: {invocation} replay {' '.join(map(shlex.quote, found))}")
    if report.cases:
        return (f"{report}; its cases ({', '.join(report.cases)}) are not on disk here: "
                "pass the case files (the run's --corpus folder, default chaos-failures/)")
    return (f"{report}, and it saved no case (no confirmed failure): pass a case file from a "
            "run's --corpus folder (default chaos-failures/)")
