"""The command line: the only place that parses arguments and exits.

    python -m chaos [run] [--examples N] [--concurrency N] [--seed S] [--bug NAME]...
    python -m chaos replay FILE...
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
from typing import NoReturn

from chaos.errors import EXIT_FAIL, EXIT_PASS, ChaosError, InfrastructureError, UsageError

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


def _parser() -> argparse.ArgumentParser:
    top = _Parser(prog="chaos", description="Property-based chaos and idempotency tester "
                  "for Stripe payment flows.")
    sub = top.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="search for invariant violations (the default)")
    run.add_argument("--examples", type=_int_in(1, 1_000_000), default=100,
                     help="scenarios to generate (default 100)")
    run.add_argument("--concurrency", type=_int_in(1, 10_000), default=50,
                     help="requests in flight at most, and the size of the load wave (default 50)")
    run.add_argument("--seed", type=_int_in(0, 2**63), default=None,
                     help="Hypothesis seed; the report records the one used")
    run.add_argument("--report", type=Path, default=Path("chaos-report.json"),
                     help="where to write the JSON report (default chaos-report.json)")
    run.add_argument("--failures-dir", type=Path, default=Path("chaos-failures"),
                     help="where to save each failure as a replayable case")
    _target_options(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="re-run saved failure cases")
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE")
    replay.add_argument("--runs", type=_int_in(1, 1000), default=3,
                        help="times to run each case (default 3); it fails if any run fails")
    replay.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    replay.add_argument("--request-timeout", type=_seconds, default=10.0)
    replay.add_argument("--example-timeout", type=_seconds, default=60.0)
    replay.add_argument("--concurrency", type=_int_in(1, 10_000), default=50)
    replay.add_argument("--reference-port", type=_int_in(0, 65535), default=0)
    replay.add_argument("--stripe-port", type=_int_in(0, 65535), default=0)
    replay.set_defaults(func=cmd_replay)

    ref = sub.add_parser("reference", help="run the reference ticketing service")
    ref.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    ref.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ref.add_argument("--schema", default="public", help="PostgreSQL schema for its tables")
    ref.add_argument("--bug", action="append", default=[], metavar="NAME")
    ref.add_argument("--stripe-api-base", default="http://127.0.0.1:12111",
                     help="where its Stripe client sends API calls (the fake Stripe API); "
                          "the key comes from CHAOS_STRIPE_API_KEY (sk_test_...)")
    ref.set_defaults(func=cmd_reference)

    fake = sub.add_parser("fake-stripe", help="run the fake Stripe API")
    fake.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    fake.set_defaults(func=cmd_fake_stripe)
    return top


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
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def _replay_command(path: Path) -> str:
    return f"nox -s chaos -- replay {shlex.quote(str(path))}"


def cmd_run(args: argparse.Namespace) -> int:
    from chaos import report as reports
    from chaos.database import check_database_url
    from chaos.log import configure
    from chaos.reference.bugs import parse_bugs
    from chaos.run import reference_run
    from chaos.search import Finding, search
    from strategies import busy_night, scenarios

    configure(verbose=args.verbose)
    bugs = parse_bugs(args.bug)
    if args.database_url:
        check_database_url(args.database_url)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    target = {"kind": "reference", "bugs": sorted(bugs)}
    report = reports.Report(target=target, seed=seed, requested_concurrency=args.concurrency)
    started = time.monotonic()
    try:
        with reference_run(bugs=bugs, database_url=args.database_url,
                           concurrency=args.concurrency, request_timeout=args.request_timeout,
                           example_timeout=args.example_timeout,
                           reference_port=args.reference_port,
                           stripe_port=args.stripe_port) as runner:
            load = runner.run_example(busy_night(args.concurrency))
            # Only what chaos/client.py speaks so far: buyers paying at once and valid
            # deliveries of checkout.session.completed. The integrator widens this.
            space = scenarios(outcomes=("paid",), event_types=("checkout.session.completed",),
                              signatures=("valid",), checkouts=(), max_offset_ms=0,
                              max_faults=0, max_ticket_types=1, tight_capacity=False)
            result = search(runner.run_example, space, examples=args.examples, seed=seed)
            metrics = runner.read_target_metrics() or {}
            report.examples = result.examples
            findings = [(f, "search") for f in result.findings]
            if load.violations and not any(f.invariant == load.violations[0].invariant
                                           for f, _ in findings):
                v = load.violations[0]
                findings.append((Finding(invariant=v.invariant, scenario=load.scenario,
                                         violations=[x for x in load.violations
                                                     if x.invariant == v.invariant],
                                         reproduced=1, attempts=1), "load"))
            for finding, phase in findings:
                path = reports.save_case(finding, target=target, seed=seed,
                                         directory=args.failures_dir)
                report.findings.append(reports.finding_data(
                    finding, replay=_replay_command(path), phase=phase))
            report.http = runner.stats.to_data()
            report.concurrency = {
                "peak_in_flight": metrics.get("peak_in_flight"),
                "client_peak_in_flight": runner.stats.client_peak_in_flight,
                "start_skew_ms": round(runner.stats.start_skew * 1000, 2),
            }
            report.verdict = "fail" if any(f["status"] == "FAILED"
                                           for f in report.findings) else "pass"
    except ChaosError as exc:
        report.error = str(exc)
        report.verdict = "error"
        raise
    finally:
        report.seconds = time.monotonic() - started
        report.write(args.report)
    print(reports.summary(report))
    print(f"report: {args.report}")
    return EXIT_FAIL if report.verdict == "fail" else EXIT_PASS


def cmd_replay(args: argparse.Namespace) -> int:
    from chaos.log import configure
    from chaos.report import load_case
    from chaos.run import reference_run

    configure()
    cases = []
    for path in args.files:
        try:
            cases.append((path, load_case(path)))
        except ValueError as exc:
            raise UsageError(f"{exc}: pass a file written by a chaos run") from None
    failed = 0
    for path, case in cases:
        target = case["target"]
        if target.get("kind") != "reference":
            raise UsageError(f"{path}: target kind {target.get('kind')!r} cannot be replayed yet")
        with reference_run(bugs=target.get("bugs", []), database_url=args.database_url,
                           concurrency=args.concurrency, request_timeout=args.request_timeout,
                           example_timeout=args.example_timeout,
                           reference_port=args.reference_port,
                           stripe_port=args.stripe_port) as runner:
            broke = 0
            messages: list[str] = []
            for _ in range(args.runs):
                result = runner.run_example(case["scenario"])
                hits = [v for v in result.violations if v.invariant == case["invariant"]]
                if hits:
                    broke += 1
                    messages = [v.message for v in hits]
        verdict = "FAILED" if broke else "PASSED"
        failed += bool(broke)
        print(f"{verdict} {path}: {case['invariant']} broke in {broke} of {args.runs} runs")
        for message in messages:
            print(f"  broken: {message}")
    return EXIT_FAIL if failed else EXIT_PASS


def cmd_reference(args: argparse.Namespace) -> int:
    from chaos.database import check_database_url, redact_url
    from chaos.reference import create_app, parse_bugs
    from chaos.safety import check_stripe_key, check_url
    from chaos.serve import bind, serve

    bugs = parse_bugs(args.bug)
    if not args.database_url:
        raise UsageError("the reference service needs --database-url (or DATABASE_URL)")
    check_database_url(args.database_url)
    secret = os.environ.get("CHAOS_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        raise UsageError("set CHAOS_WEBHOOK_SECRET to the webhook signing secret (whsec_...)")
    api_key = check_stripe_key(os.environ.get("CHAOS_STRIPE_API_KEY", "sk_test_chaos"),
                               what="CHAOS_STRIPE_API_KEY")
    check_url(args.stripe_api_base, what="--stripe-api-base")
    _check_database(args.database_url, redact_url)
    sock = bind(args.port)
    serve(create_app(database_url=args.database_url, schema=args.schema,
                     webhook_secret=secret, bugs=bugs, stripe_api_base=args.stripe_api_base,
                     stripe_api_key=api_key), sock)
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
    from chaos.fake_stripe import create_app
    from chaos.serve import bind, serve

    sock = bind(args.port)
    serve(create_app(), sock)
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
