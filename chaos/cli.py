"""The command line: the only place that parses arguments and exits.

    python -m chaos [run] [--examples N] [--concurrency N] [--seed S] [--bug NAME]...
                    [--profile NAME] [--tries N] [--confirm-runs N] [--max-seconds S]
    python -m chaos replay FILE...
    python -m chaos load [--stages 10s:50,40s:50,10s:0] [--mix duplicates=0.5] [--threshold EXPR]
    python -m chaos run --config chaos.toml [--set KEY=VALUE]...   (your own service)
    python -m chaos replay --expect FILE|DIR...     (the regression suite)
    python -m chaos run --shard I/N [--example-db URL]  (one of N machines)
    python -m chaos merge SHARD.json... [--cases DIR]... (their reports as one)
    python -m chaos reference --port P --database-url URL [--schema S] [--bug NAME]...
    python -m chaos fake-stripe --port P

Exit codes: 0 every invariant holds; 1 an invariant broke; 2 bad usage or
config; 3 the target or the infrastructure failed; 128 + the signal when
stopped (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; 141 when stdout was closed,
e.g. ``| head``). Errors are one line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from chaos.errors import (
    EXIT_FAIL,
    EXIT_INFRASTRUCTURE,
    EXIT_PASS,
    EXIT_USAGE,
    ChaosError,
    UsageError,
)
from chaos.shutdown import Interrupted, handled, received

if TYPE_CHECKING:  # imported when a command runs: the help and errors stay light
    from chaos.config import Config
    from chaos.lifecycle import RunOptions
    from chaos.shard import Shard

COMMANDS = ("run", "replay", "load", "merge", "reference", "fake-stripe")


#: The tool's one name: in help, in every message, in the commands it prints.
PROG = "payment-chaos"


def invocation() -> str:
    """How the user ran the tool, so the commands it prints (replay, help) work where
    they ran it: what the launcher said (``nox -s chaos --`` sets ``CHAOS_INVOCATION``),
    the console script by its name, else ``python -m chaos``."""
    told = os.environ.get("CHAOS_INVOCATION", "").strip()
    if told:
        return told
    return PROG if Path(sys.argv[0]).name == PROG else "python -m chaos"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        command = self.prog.split()[-1]
        where = f"{invocation()} --help" if command == PROG else f"{invocation()} {command} --help"
        raise UsageError(f"{message} (see: {where})")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def _shard(text: str) -> Shard:
    from chaos.shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    top = _Parser(prog=PROG, description="Property-based chaos and idempotency tester "
                  "for Stripe payment flows.", epilog=_top_epilog(),
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="search for invariant violations (the default)")
    run.add_argument("--examples", type=_int_in(1, 1_000_000), default=None,
                     help="scenarios to generate (default: the profile's, 100 for default)")
    run.add_argument("--profile", choices=("default", "dev", "ci", "thorough"), default="default",
                     help="Hypothesis settings: dev (20 examples), ci (derandomized), "
                          "thorough (2,000 examples)")
    run.add_argument("--tries", "--attempts", dest="tries", type=_int_in(1, 100), default=3,
                     metavar="N",
                     help="runs of an example that races, once a failure was seen, and of each "
                          "simpler scenario while shrinking a race (default 3; --attempts is "
                          "its old name)")
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
                     default=Path("chaos-failures"), metavar="DIR",
                     help="where to save each confirmed failure as a replayable case "
                          "(default chaos-failures, git-ignored: commit the cases you want "
                          "CI to replay into a folder of your own, e.g. tests/regressions)")
    run.add_argument("--known", type=Path, action="append", default=[], metavar="CASE",
                     help="a bug already known (a case file, or a folder of them; "
                          "repeatable): reported as known, it does not crowd out the search "
                          "for new ones (the corpus's cases of this target count too)")
    run.add_argument("--junit", type=Path, default=None, metavar="PATH",
                     help="also write JUnit XML: one test case per invariant and threshold")
    run.add_argument("--html", type=Path, default=None, metavar="PATH",
                     help="also write the HTML timeline of each failure (one self-contained file)")
    run.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                     help="run part I of N: every N-th playbook story and a seed of its own, "
                          "so N machines (CI matrix jobs) search without overlap; merge "
                          "their reports with `merge`")
    run.add_argument("--example-db", default=os.environ.get("CHAOS_EXAMPLE_DB") or None,
                     metavar="URL",
                     help="Hypothesis example database shared by shards and runs: a folder, "
                          "redis://HOST:PORT/DB[?key_prefix=P] or github://OWNER/REPO[/ARTIFACT] "
                          "(read-only, with .hypothesis/chaos-examples); failures saved there "
                          "are replayed first (default: $CHAOS_EXAMPLE_DB, else none)")
    run.add_argument("--allow-host", dest="allow_hosts", action="append", metavar="HOST",
                     default=[h.strip() for h in os.environ.get("CHAOS_ALLOW_HOSTS", "")
                              .split(",") if h.strip()],
                     help="a host off loopback the run may reach: the --example-db's Redis, "
                          "or api.github.com for github:// (default: $CHAOS_ALLOW_HOSTS, "
                          "comma-separated)")
    run.add_argument("--workers", type=_int_in(1, 64), default=1, metavar="N",
                     help="run as N shard processes on this machine and merge them "
                          "(--examples is split between them; default 1)")
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

    merge = sub.add_parser("merge", help="merge shards' reports (run or load) into one report, "
                           "JUnit file, HTML page and corpus")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT",
                       help="the shards' JSON reports (run's --report, or load's --summary)")
    merge.add_argument("--cases", type=Path, action="append", default=[], metavar="DIR",
                       help="a shard's corpus folder (repeatable): its cases join the merged "
                            "corpus (cases the reports name are found next to them too)")
    merge.add_argument("--report", type=Path, default=Path("chaos-report.json"),
                       help="where to write the merged JSON report (default chaos-report.json)")
    merge.add_argument("--junit", type=Path, default=None, metavar="PATH",
                       help="also write the merged JUnit XML")
    merge.add_argument("--html", type=Path, default=None, metavar="PATH",
                       help="also write the merged HTML timeline")
    merge.add_argument("--corpus", type=Path, default=Path("chaos-failures"), metavar="DIR",
                       help="where the merged corpus goes (default chaos-failures)")
    merge.set_defaults(func=cmd_merge)

    from chaos.load.command import add_arguments as load_arguments
    from chaos.load.command import cmd_load

    load = sub.add_parser("load", help="sustained k6-style load of buyer journeys, invariants "
                          "checked as it goes")
    load_arguments(load)
    _target_options(load)
    _config_options(load)
    load.set_defaults(func=cmd_load)

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


def _top_epilog() -> str:
    """Where the options are: without a command the tool runs ``run``, whose options
    (examples, seed, bugs, config, reports) the top-level help does not list."""
    tool = invocation()
    return (f"Without a command it runs `run`. Its options (--examples, --seed, --bug, "
            f"--config, --report, --html, --junit, ...):\n  {tool} run --help\n"
            f"Replaying saved cases:\n  {tool} replay --help")


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


def _load_config(args: argparse.Namespace, path: str | None = None) -> Config:
    """The config ``--config`` (or ``path``) names, with ``--set``; refuses the options
    that only make sense for the reference service."""
    from chaos.lifecycle import load_config

    return load_config(path or args.config, args.overrides, bugs=getattr(args, "bug", None) or (),
                       reference_port=getattr(args, "reference_port", 0),
                       stripe_port=getattr(args, "stripe_port", 0),
                       database_url=getattr(args, "database_url", None))


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: the options as :class:`chaos.lifecycle.RunOptions`, the run, its summary."""
    from chaos import report as reports
    from chaos.lifecycle import RunOptions, run

    config = None
    if args.config is not None:
        config = _load_config(args)
    elif args.overrides:
        raise UsageError("--set overrides keys of a config: give the config with --config PATH")
    options = RunOptions(
        examples=args.examples, profile=args.profile, tries=args.tries,
        confirm_runs=args.confirm_runs, max_seconds=args.max_seconds,
        shrink_seconds=args.shrink_seconds, playbook=not args.no_playbook,
        max_error_rate=args.max_error_rate, max_p95=args.max_p95,
        concurrency=args.concurrency, seed=args.seed, report=args.report, corpus=args.corpus,
        known=tuple(args.known), junit=args.junit, html=args.html, bugs=tuple(args.bug),
        database_url=args.database_url, request_timeout=args.request_timeout,
        example_timeout=args.example_timeout, reference_port=args.reference_port,
        stripe_port=args.stripe_port, log_json=args.log_json, verbose=args.verbose,
        invocation=invocation(), example_db=args.example_db,
        allow_hosts=tuple(args.allow_hosts),
        **({"shard": args.shard} if args.shard is not None else {}))
    if args.workers > 1:
        return _run_workers(args, options, config)
    report = run(options, config=config, events=reports.Watch(reports.Progress()))
    print(reports.summary(report.to_data(), files={
        "report": args.report, "junit": args.junit, "html": args.html, "log": args.log_json}))
    interrupt = received()
    if interrupt is not None:   # the run stopped early and said so; now exit as the signal asks
        raise interrupt
    return EXIT_FAIL if report.verdict == "fail" else EXIT_PASS


def _run_workers(args: argparse.Namespace, options: RunOptions, config: Config | None) -> int:
    """``run --workers N``: N shard processes, merged (chaos.fanout)."""
    from chaos import report as reports
    from chaos.errors import InfrastructureError
    from chaos.fanout import run_workers
    from chaos.lifecycle import check_run_options, known_for_workers

    if args.shard is not None:
        raise UsageError("--workers runs every shard of the run on this machine: drop "
                         "--shard, or give each machine --shard I/N without --workers")
    if args.log_json is not None:
        raise UsageError("--workers: each worker would write its own log; drop --log-json "
                         "(or run the shards yourself with --shard I/N --log-json PATH)")
    check_run_options(options, config)
    data = run_workers(options, args.workers, config=args.config,
                       overrides=tuple(args.overrides),
                       known=known_for_workers(options, config))
    print(reports.summary(data, files={"report": args.report, "junit": args.junit,
                                       "html": args.html}))
    if data.get("verdict") == "error":
        raise InfrastructureError(str(data.get("error") or "a worker ended in error"))
    return EXIT_FAIL if data.get("verdict") == "fail" else EXIT_PASS


def cmd_merge(args: argparse.Namespace) -> int:
    """``merge``: the shards' reports as one (chaos.merge), its summary."""
    from chaos.merge import MergeOptions, merge

    data = merge(MergeOptions(reports=tuple(args.reports), report=args.report, junit=args.junit,
                              html=args.html, corpus=args.corpus, cases=tuple(args.cases),
                              invocation=invocation()))
    if data.get("kind") == "load":
        from chaos.load.summary import render

        print(render(data, summary_path=str(args.report)))
    else:
        from chaos import report as reports

        print(reports.summary(data, files={"report": args.report, "junit": args.junit,
                                           "html": args.html}))
    return EXIT_FAIL if data.get("verdict") in ("fail", "error") else EXIT_PASS


def _check_target_secrets() -> None:
    """The target's secrets from the environment, checked (load and replay use it too)."""
    from chaos.lifecycle import check_target_secrets

    check_target_secrets()


def cmd_replay(args: argparse.Namespace) -> int:
    """``replay``: the options as :class:`chaos.lifecycle.ReplayOptions`, the replay, its text."""
    from chaos.lifecycle import ReplayOptions, replay

    replayed = replay(ReplayOptions(
        files=tuple(args.files), expect=args.expect, runs=args.runs, log_json=args.log_json,
        database_url=args.database_url, request_timeout=args.request_timeout,
        example_timeout=args.example_timeout, concurrency=args.concurrency,
        reference_port=args.reference_port, stripe_port=args.stripe_port, config=args.config,
        overrides=tuple(args.overrides), invocation=invocation()))
    print(replayed.text)
    return EXIT_FAIL if replayed.failed else EXIT_PASS


def cmd_reference(args: argparse.Namespace) -> int:
    from chaos.database import Database, check_database_url
    from chaos.log import configure
    from chaos.reference import create_app, parse_bugs
    from chaos.safety import check_database_host, check_stripe_key, check_url
    from chaos.serve import bind, serve
    from chaos.target import DEFAULT_ANON_KEY

    configure()
    bugs = parse_bugs(args.bug)
    if not args.database_url:
        raise UsageError("the reference service needs --database-url (or DATABASE_URL)")
    check_database_url(args.database_url)
    check_database_host(args.database_url, what="--database-url / DATABASE_URL")
    secret = os.environ.get("CHAOS_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        raise UsageError("set CHAOS_WEBHOOK_SECRET to the webhook signing secret (whsec_...)")
    api_key = check_stripe_key(os.environ.get("CHAOS_STRIPE_API_KEY", "sk_test_chaos"),
                               what="CHAOS_STRIPE_API_KEY")
    anon_key = os.environ.get("CHAOS_ANON_KEY") or DEFAULT_ANON_KEY
    check_url(args.stripe_api_base, what="--stripe-api-base")
    Database(args.database_url, pool_size=1).close()   # reachable, or one line naming it
    sock = bind(args.port)
    serve(create_app(database_url=args.database_url, schema=args.schema,
                     webhook_secret=secret, bugs=bugs, stripe_api_base=args.stripe_api_base,
                     stripe_api_key=api_key, anon_key=anon_key), sock)
    return EXIT_PASS


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
        if args.func not in (cmd_run, cmd_replay, cmd_merge):
            code: int = args.func(args)  # the services run under uvicorn, which handles signals
            return code
        with handled():             # SIGINT, SIGTERM, SIGHUP: unwind, report, 130/143/129
            code = args.func(args)
            return code
    except ChaosError as exc:
        print(f"{PROG}: error: {_redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:  # the tool's dependencies are not installed here
        print(f"{PROG}: error: the module {exc.name!r} is missing from this Python "
              f"({sys.executable}): install the tool with its dependencies "
              "(pip install payment-chaos, or pip install -e . in its checkout), or run "
              "nox -s chaos", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        name = exc.name if isinstance(exc, Interrupted) else "SIGINT"
        print(f"{PROG}: interrupted by {name}: stopped and removed what it "
              "started; a run's report keeps the failures found so far", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Interrupted) else 130
    except BrokenPipeError:   # whoever read stdout went away (``| head``): not a crash
        with contextlib.suppress(OSError):   # nothing more can reach it, at exit included
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"{PROG}: stdout was closed before the output ended (broken pipe); a run's "
              "report file still holds its result", file=sys.stderr)
        return 128 + signal.SIGPIPE
    except Exception as exc:  # a bug of the tool's own: one line here, the traceback in a file
        return _internal_error(exc)


def _redact(text: str) -> str:
    """``text`` through the log's redactor; without it (a broken install: structlog
    missing), URL passwords are still hidden, and the error handlers do not crash."""
    try:
        from chaos.log import redactor
    except ImportError:
        import re

        return re.sub(r"(://[^:/@\s]*:)[^@\s/]+@", r"\1[redacted]@", text)
    return redactor.text(text)


def _internal_error(exc: BaseException) -> int:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile("w", prefix="chaos-crash-", suffix=".txt",
                                     delete=False) as crash:
        crash.write(_redact("".join(traceback.format_exception(exc))))
    print(f"{PROG}: internal error: {type(exc).__name__}: {_redact(str(exc))[:200]} "
          f"(a bug in payment-chaos; the traceback is in {crash.name}, please report it)",
          file=sys.stderr)
    return EXIT_INFRASTRUCTURE
