"""The command line: the only place that parses arguments and exits.

    python -m chaos [run] [--examples N] [--concurrency N] [--seed S] [--bug NAME]...
                    [--profile NAME] [--attempts N] [--confirm-runs N] [--max-seconds S]
    python -m chaos replay FILE...
    python -m chaos run --config chaos.toml [--set KEY=VALUE]...   (your own service)
    python -m chaos replay --expect FILE|DIR...     (the regression suite)
    python -m chaos reference --port P --database-url URL [--schema S] [--bug NAME]...
    python -m chaos fake-stripe --port P

Exit codes: 0 every invariant holds; 1 an invariant broke; 2 bad usage or
config; 3 the target or the infrastructure failed. Errors are one line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from chaos.errors import (
    EXIT_FAIL,
    EXIT_INFRASTRUCTURE,
    EXIT_PASS,
    ChaosError,
    InfrastructureError,
    UsageError,
)

COMMANDS = ("run", "replay", "reference", "fake-stripe")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        command = self.prog.split()[-1]
        where = "python -m chaos --help" if command == "chaos" else f"python -m chaos {command} --help"
        raise UsageError(f"{message} (see: {where})")


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside (0, 86400]")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is outside (0, 1]")
    return value


def _parser() -> argparse.ArgumentParser:
    top = _Parser(prog="chaos", description="Property-based chaos and idempotency tester "
                  "for Stripe payment flows.")
    sub = top.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="search for invariant violations (the default)")
    run.add_argument("--examples", type=_int_in(1, 1_000_000), default=None,
                     help="scenarios to generate (default: the profile's, 100 for default)")
    run.add_argument("--profile", choices=("default", "dev", "ci", "thorough"), default="default",
                     help="Hypothesis settings: dev (20 examples, example database), ci "
                          "(derandomized, no database), thorough (2,000 examples)")
    run.add_argument("--attempts", type=_int_in(1, 100), default=3,
                     help="tries per example once a failure was seen, for races (default 3)")
    run.add_argument("--confirm-runs", type=_int_in(1, 1000), default=5,
                     help="re-runs of each shrunk failure to measure how often it fails "
                          "(default 5)")
    run.add_argument("--max-seconds", type=_seconds, default=3600.0,
                     help="deadline for the whole run; it stops cleanly and reports what it "
                          "found (default 3600)")
    run.add_argument("--shrink-seconds", type=_seconds, default=20.0,
                     help="time to minimize each distinct bug step by step before it is "
                          "confirmed and reported (default 20)")
    run.add_argument("--no-playbook", action="store_true",
                     help="skip the playbook (the classic failure stories, played before the "
                          "search draws its own scenarios): measure the search alone")
    run.add_argument("--max-error-rate", type=_fraction, default=0.01,
                     help="threshold http-error-rate: fail at this share of requests in "
                          "error or more (default 0.01)")
    run.add_argument("--max-p95", type=_seconds, default=5.0,
                     help="threshold http-p95: fail when the p95 latency reaches this many "
                          "seconds (default 5)")
    run.add_argument("--concurrency", type=_int_in(1, 10_000), default=50,
                     help="requests in flight at most, and the size of the load wave (default 50)")
    run.add_argument("--seed", type=_int_in(0, 2**63), default=None,
                     help="Hypothesis seed; the report records the one used")
    run.add_argument("--report", type=Path, default=Path("chaos-report.json"),
                     help="where to write the JSON report (default chaos-report.json)")
    run.add_argument("--corpus", "--failures-dir", dest="corpus", type=Path,
                     default=Path("tests/regressions"), metavar="DIR",
                     help="where to save each confirmed failure as a replayable case "
                          "(default tests/regressions)")
    run.add_argument("--known", type=Path, action="append", default=[], metavar="CASE",
                     help="a bug already known (a case file, or a folder of them; "
                          "repeatable): reported as known, it does not crowd out the search "
                          "for new ones (the corpus's cases of this target count too)")
    run.add_argument("--junit", type=Path, default=None, metavar="PATH",
                     help="also write JUnit XML: one test case per invariant and threshold")
    run.add_argument("--html", type=Path, default=None, metavar="PATH",
                     help="also write the HTML timeline of each failure (one self-contained file)")
    _target_options(run)
    _config_options(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="re-run saved failure cases")
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="case files, or directories of them (e.g. tests/regressions)")
    replay.add_argument("--expect", action="store_true",
                        help="check each case's expectations (the regression suite) instead of "
                             "re-running it against the target it names")
    replay.add_argument("--runs", type=_int_in(1, 1000), default=3,
                        help="times to run each case (default 3); it broke if any run broke")
    replay.add_argument("--log-json", type=Path, default=None, metavar="PATH",
                        help="write log events as JSON lines")
    replay.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    replay.add_argument("--request-timeout", type=_seconds, default=10.0)
    replay.add_argument("--example-timeout", type=_seconds, default=60.0)
    replay.add_argument("--concurrency", type=_int_in(1, 10_000), default=50)
    replay.add_argument("--reference-port", type=_int_in(0, 65535), default=0)
    replay.add_argument("--stripe-port", type=_int_in(0, 65535), default=0)
    _config_options(replay)
    replay.set_defaults(func=cmd_replay)

    ref = sub.add_parser("reference", help="run the reference ticketing service")
    ref.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    ref.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ref.add_argument("--schema", default="public", help="PostgreSQL schema for its tables")
    ref.add_argument("--bug", action="append", default=[], metavar="NAME",
                     help="switch on a catalogued bug (repeatable): " + ", ".join(_bug_names()))
    ref.add_argument("--stripe-api-base", default="http://127.0.0.1:12111",
                     help="where its Stripe client sends API calls (the fake Stripe API); "
                          "the key comes from CHAOS_STRIPE_API_KEY (sk_test_...); the "
                          "checkout door's anon key from CHAOS_ANON_KEY")
    ref.set_defaults(func=cmd_reference)

    fake = sub.add_parser("fake-stripe", help="run the fake Stripe API")
    fake.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    fake.set_defaults(func=cmd_fake_stripe)
    return top


def _bug_names() -> list[str]:
    from chaos.reference.bugs import CATALOGUE

    return sorted(CATALOGUE)


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bug", action="append", default=[], metavar="NAME",
                        help="switch on a bug of the reference service (repeatable)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL server to use (default: $DATABASE_URL, else an "
                             "embedded throwaway server)")
    parser.add_argument("--request-timeout", type=_seconds, default=10.0,
                        help="seconds before a request counts as unanswered (default 10)")
    parser.add_argument("--example-timeout", type=_seconds, default=60.0,
                        help="seconds one example may take at most (default 60)")
    parser.add_argument("--reference-port", type=_int_in(0, 65535), default=0,
                        help="port for the reference service on 127.0.0.1 (default: any free)")
    parser.add_argument("--stripe-port", type=_int_in(0, 65535), default=0,
                        help="port for the fake Stripe API on 127.0.0.1 (default: any free)")
    parser.add_argument("--log-json", type=Path, default=None, metavar="PATH",
                        help="write every log event as a JSON line (secrets redacted)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="test your own service as this chaos.toml (or pyproject.toml with "
                             "[tool.chaos]) describes it, instead of the reference service")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key (repeatable), e.g. "
                             "--set target.base_url=http://127.0.0.1:9000")


def _load_config(args: argparse.Namespace, path: str | None = None) -> Any:
    """The config ``--config`` (or ``path``) names, with ``--set``; refuses the
    options that only make sense for the reference service."""
    from chaos.config import load

    if getattr(args, "bug", None):
        raise UsageError("--bug switches on bugs of the reference service; with --config "
                         "the target is your own service: drop --bug")
    for option in ("reference_port", "stripe_port"):
        if getattr(args, option, 0):
            raise UsageError(f"--{option.replace('_', '-')} is for the reference run; with "
                             "--config set the fake Stripe's port with --set stripe.port=N")
    given = getattr(args, "database_url", None)
    if given and given != os.environ.get("DATABASE_URL"):  # typed, not the environment's
        raise UsageError("--database-url is for the reference run; with --config the "
                         "database is your service's: --set database.url=URL")
    return load(path or args.config, args.overrides)


def _replay_command(path: Path) -> str:
    return f"nox -s chaos -- replay {shlex.quote(str(path))}"


def cmd_run(args: argparse.Namespace) -> int:
    from chaos import report as reports
    from chaos.database import check_database_url
    from chaos.log import configure, get_logger
    from chaos.reference.bugs import parse_bugs
    from chaos.run import OutOfTime, configured_run, reference_run
    from chaos.search import Finding, KnownBug, search
    from chaos.thresholds import Thresholds
    from strategies import busy_night, playbook, scenarios

    _check_outputs(args)
    configure(verbose=args.verbose, json_path=args.log_json)
    log = get_logger(command="run")
    log.info("run.start", bugs=args.bug, examples=args.examples, seed=args.seed,
             concurrency=args.concurrency)
    watch = reports.Watch(reports.Progress(), log)
    config = None
    if args.config is not None:
        config = _load_config(args)
    elif args.overrides:
        raise UsageError("--set overrides keys of a config: give the config with --config PATH")
    bugs = parse_bugs(args.bug)
    if args.database_url and config is None:
        check_database_url(args.database_url)
    # ci is derandomized (without --seed it draws the same scenarios every run); dev keeps
    # Hypothesis' example database, which Hypothesis does not use under a fixed seed
    seed = args.seed if args.seed is not None or args.profile in ("ci", "dev") \
        else secrets.randbelow(2**32)
    target = {"kind": "reference", "bugs": sorted(bugs)} if config is None \
        else config.report_target()
    report = reports.Report(target=target, seed=seed, requested_concurrency=args.concurrency,
                            profile=args.profile,
                            extra_invariants=[i.name for i in config.target.invariants]
                            if config is not None else [])
    known = [KnownBug(c.invariant, c.scenario, str(c.path)) for c in _known_cases(args, target)]
    started = time.monotonic()
    deadline = started + args.max_seconds
    timeouts = {"concurrency": args.concurrency, "request_timeout": args.request_timeout,
                "example_timeout": args.example_timeout}
    start = watch.runs(configured_run)(config, **timeouts) if config is not None else \
        watch.runs(reference_run)(bugs=bugs, database_url=args.database_url,
                                  reference_port=args.reference_port,
                                  stripe_port=args.stripe_port, **timeouts)
    try:
        with start as runner:
            runner.deadline = deadline
            report.database = runner.database
            load = None
            try:
                load = runner.run_example(busy_night(args.concurrency))
            except OutOfTime:
                pass
            if load is not None and load.violations:
                report.first_failure = _first_failure(0, time.monotonic() - started,
                                                      load.violations[0].invariant, "load")
            result = search(runner.run_example, scenarios(swarm=True), examples=args.examples,
                            seed=seed,
                            attempts=args.attempts, confirm_runs=args.confirm_runs,
                            profile=args.profile, deadline=deadline,
                            shrink_seconds=args.shrink_seconds,
                            playbook=() if args.no_playbook else
                            [scenario for _, scenario in playbook()], known=known)
            report.examples = result.examples
            first = result.first_failure
            if report.first_failure is None and first is not None:
                report.first_failure = _first_failure(first.example, first.at - started,
                                                      first.invariant, first.phase)
            report.stopped = result.stopped if load is not None else "max-seconds"
            if load is None and not result.examples:
                raise UsageError(f"--max-seconds {args.max_seconds:g} ran out before the first "
                                 f"example (start-up took {time.monotonic() - started:.1f} s): "
                                 "raise it")
            findings = [(f, "search") for f in result.findings]
            if load is not None and load.violations and not any(
                    f.invariant == load.violations[0].invariant for f, _ in findings):
                v = load.violations[0]
                findings.append((Finding(invariant=v.invariant, scenario=load.scenario,
                                         violations=[x for x in load.violations
                                                     if x.invariant == v.invariant],
                                         reproduced=1, attempts=1), "load"))
            for finding, phase in findings:
                report.findings.append(_record(finding, phase, target=target, seed=seed,
                                               corpus=args.corpus, watch=watch, log=log))
            report.http = runner.stats.to_data()
            report.concurrency = runner.stats.concurrency_data()
            report.thresholds = runner.stats.thresholds(
                Thresholds(max_error_rate=args.max_error_rate, max_p95=args.max_p95))
            if result.error is not None:
                raise result.error
            report.verdict = "fail" if any(f["status"] == "FAILED" for f in report.findings) \
                or any(t["verdict"] == "fail" for t in report.thresholds.values()) else "pass"
    except ChaosError as exc:
        report.error = str(exc)
        report.verdict = "error"
        raise
    finally:
        report.seconds = time.monotonic() - started
        report.write(args.report)
        _finish_run(report, args, watch, log)
    print(reports.summary(report.to_data(), files={
        "report": args.report, "junit": args.junit, "html": args.html, "log": args.log_json}))
    return EXIT_FAIL if report.verdict == "fail" else EXIT_PASS


def _known_cases(args: argparse.Namespace, target: dict[str, Any]) -> list[Any]:
    """``--known`` cases and the corpus's cases of ``target``; a bad ``--known`` is a
    UsageError."""
    from chaos.report.corpus import known_cases

    missing = [str(path) for path in args.known if not path.exists()]
    if missing:
        raise UsageError(f"--known {missing[0]}: no such file or folder: pass a case file "
                         "written by a chaos run")
    try:
        return known_cases(args.known, corpus=args.corpus, target=target)
    except ValueError as exc:
        raise UsageError(f"--known: {exc}: pass a case file written by a chaos run") from None


def _first_failure(example: int, seconds: float, invariant: str, phase: str) -> dict[str, Any]:
    """The report's ``first_failure``: the example that first broke an invariant (0 is the
    load wave; the search's examples count from 1, re-runs included, as ``examples`` does),
    seconds since the run started (start-up included), the invariant, the phase."""
    return {"example": example, "seconds": round(seconds, 2), "invariant": invariant,
            "phase": phase}


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable output paths and malformed target secrets before anything starts."""
    from chaos.report.outputs import check_writable

    for path, option in ((args.report, "--report"), (args.junit, "--junit"),
                         (args.html, "--html"), (args.log_json, "--log-json")):
        check_writable(path, option)
    _check_target_secrets()


def _check_target_secrets() -> None:
    """``CHAOS_WEBHOOK_SECRET`` / ``CHAOS_STRIPE_API_KEY`` (and ``CHAOS_ANON_KEY``), when set,
    are what the reference service is started with (else fresh random ones): refuse
    malformed or live ones."""
    from chaos.safety import check_stripe_key

    secret = os.environ.get("CHAOS_WEBHOOK_SECRET")
    if secret and not secret.startswith("whsec_"):
        raise UsageError("CHAOS_WEBHOOK_SECRET must be a webhook signing secret (whsec_...)")
    if os.environ.get("CHAOS_STRIPE_API_KEY"):
        check_stripe_key(os.environ["CHAOS_STRIPE_API_KEY"], what="CHAOS_STRIPE_API_KEY")


def _record(finding: Any, phase: str, *, target: dict[str, Any], seed: int | None, corpus: Path,
            watch: Any, log: Any) -> dict[str, Any]:
    """Save a confirmed finding in the corpus; return it as the report carries it.
    A FLAKY one (it did not fail again) is reported but kept out of the corpus."""
    from chaos import report as reports

    path: Path | None = Path(finding.known) if getattr(finding, "known", None) else None
    new = False
    if finding.status == "FAILED" and path is None:
        path, new = reports.save_case(
            invariant=finding.invariant, target=target, seed=seed, scenario=finding.scenario,
            found={"status": finding.status,
                   "reproduced": f"{finding.reproduced}/{finding.attempts}", "phase": phase,
                   "violations": [v.to_data() for v in finding.violations]},
            directory=corpus)
    replay = _replay_command(path) if path else (
        f"not saved to the corpus: it did not fail again in {finding.attempts} confirm runs")
    log.info("finding", invariant=finding.invariant, status=finding.status,
             reproduced=f"{finding.reproduced}/{finding.attempts}", phase=phase,
             requests=finding.scenario.requests, case=str(path) if path else None, new_case=new)
    return reports.finding_data(finding, replay=replay, phase=phase, case=path,
                                history=watch.history(finding.scenario, finding.invariant))


def _finish_run(report: Any, args: argparse.Namespace, watch: Any, log: Any) -> None:
    """Clear the progress line; write JUnit and HTML next to the JSON report; close the log."""
    from chaos.log import close
    from chaos.report.outputs import write_outputs

    watch.progress.close()
    data = report.to_data()
    try:
        write_outputs(data, junit_path=args.junit, html_path=args.html)
    finally:
        log.info("run.end", verdict=data["verdict"], target=data["target"], seed=data["seed"],
                 examples=data["examples"], seconds=data["seconds"],
                 failures=len(data["failures"]), error=data.get("error"))
        close()


def cmd_replay(args: argparse.Namespace) -> int:
    from chaos.log import close, configure, get_logger
    from chaos.replay import checks_of, render, run_checks
    from chaos.report.corpus import corpus_files, load_case
    from chaos.report.outputs import check_writable
    from chaos.run import configured_run, reference_run

    check_writable(args.log_json, "--log-json")
    _check_target_secrets()
    configure(json_path=args.log_json)
    paths = corpus_files(args.files)
    if not paths:
        raise UsageError(f"no case files (*.json) in {', '.join(map(str, args.files))}: "
                         "pass files written by a chaos run")
    cases = []
    for path in paths:
        try:
            cases.append(load_case(path))
        except ValueError as exc:
            raise UsageError(f"{exc}: pass a file written by a chaos run") from None
    kinds = {str(case.target.get("kind")) for case in cases}
    for case in cases:
        if case.target.get("kind") not in ("reference", "config"):
            raise UsageError(f"{case.path}: target kind {case.target.get('kind')!r} cannot be "
                             "replayed")
    config = None
    if "config" in kinds:
        if len(kinds) > 1:
            raise UsageError("these cases name both the reference service and a config: "
                             "replay them separately")
        named = {str(case.target.get("config")) for case in cases}
        if args.config is None and len(named) > 1:
            raise UsageError(f"these cases name different configs ({', '.join(sorted(named))}): "
                             "replay them separately, or pick one with --config PATH")
        config = _load_config(args, args.config or named.pop())
    elif args.config is not None or args.overrides:
        option = "--config" if args.config is not None else "--set"
        raise UsageError(f"{option} is for cases found through a config; these cases name "
                         f"the reference service: drop {option}")

    def start(bugs: tuple[str, ...]) -> Any:
        if config is not None:
            return configured_run(config, concurrency=args.concurrency,
                                  request_timeout=args.request_timeout,
                                  example_timeout=args.example_timeout)
        return reference_run(bugs=list(bugs), database_url=args.database_url,
                             concurrency=args.concurrency, request_timeout=args.request_timeout,
                             example_timeout=args.example_timeout,
                             reference_port=args.reference_port, stripe_port=args.stripe_port)

    checks = checks_of(cases, expect=args.expect)
    try:
        run_checks(checks, runs=args.runs, start=start, log=get_logger(command="replay"))
    finally:
        close()
    text, failed = render(checks)
    print(text)
    return EXIT_FAIL if failed else EXIT_PASS


def cmd_reference(args: argparse.Namespace) -> int:
    from chaos.database import check_database_url, redact_url
    from chaos.log import configure
    from chaos.reference import create_app, parse_bugs
    from chaos.safety import check_stripe_key, check_url
    from chaos.serve import bind, serve
    from chaos.target import DEFAULT_ANON_KEY

    configure()
    bugs = parse_bugs(args.bug)
    if not args.database_url:
        raise UsageError("the reference service needs --database-url (or DATABASE_URL)")
    check_database_url(args.database_url)
    secret = os.environ.get("CHAOS_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        raise UsageError("set CHAOS_WEBHOOK_SECRET to the webhook signing secret (whsec_...)")
    api_key = check_stripe_key(os.environ.get("CHAOS_STRIPE_API_KEY", "sk_test_chaos"),
                               what="CHAOS_STRIPE_API_KEY")
    anon_key = os.environ.get("CHAOS_ANON_KEY") or DEFAULT_ANON_KEY
    check_url(args.stripe_api_base, what="--stripe-api-base")
    _check_database(args.database_url, redact_url)
    sock = bind(args.port)
    serve(create_app(database_url=args.database_url, schema=args.schema,
                     webhook_secret=secret, bugs=bugs, stripe_api_base=args.stripe_api_base,
                     stripe_api_key=api_key, anon_key=anon_key), sock)
    return EXIT_PASS


def _check_database(url: str, redact) -> None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        await conn.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), 15))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise InfrastructureError(f"cannot connect to the database at {redact(url)} "
                                  f"({str(exc).strip() or type(exc).__name__}): check "
                                  "--database-url") from None


def cmd_fake_stripe(args: argparse.Namespace) -> int:
    from chaos.fake_stripe import Connections, create_app
    from chaos.serve import bind, serve

    sock = bind(args.port)
    connections = Connections()
    serve(create_app(connections=connections), sock, http=connections.protocol())
    return EXIT_PASS


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")
    try:
        args = _parser().parse_args(argv)
        return args.func(args)
    except ChaosError as exc:
        from chaos.log import redactor

        print(f"chaos: error: {redactor.text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of the tool's own: one line here, the traceback in a file
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    import tempfile
    import traceback

    from chaos.log import redactor

    with tempfile.NamedTemporaryFile("w", prefix="chaos-crash-", suffix=".txt",
                                     delete=False) as crash:
        crash.write(redactor.text("".join(traceback.format_exception(exc))))
    print(f"chaos: internal error: {type(exc).__name__}: {redactor.text(str(exc))[:200]} "
          f"(a bug in payment-chaos; the traceback is in {crash.name}, please report it)",
          file=sys.stderr)
    return EXIT_INFRASTRUCTURE
