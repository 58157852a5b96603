"""``payment-chaos load``: the command's options and what it runs (the CLI registers it).

    payment-chaos load [--vus 50 --duration 30s | --stages 10s:50,40s:50,10s:0 |
                        --rate 20 --duration 30s --vus 50] [--mix KEY=VALUE,...]
                       [--threshold EXPR]... [--check-every 5s] [--summary PATH]
                       [--bug NAME]... [--config chaos.toml]

Exit codes as for a chaos run: 0 every threshold and invariant held, 1 one
broke, 2 bad usage, 3 the target or the infrastructure failed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.errors import EXIT_FAIL, EXIT_PASS, ChaosError, UsageError
from chaos.load.profile import MAX_VUS, LoadProfile, parse_duration, parse_stages
from chaos.load.thresholds import DEFAULTS, METRICS, thresholds
from chaos.shard import Shard, parse_shard

if TYPE_CHECKING:
    from chaos.load.metrics import Metrics


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The load command's own options (the target and config options are the run's)."""
    shape = parser.add_argument_group("load shape (as k6's executors)")
    shape.add_argument("--vus", type=int, default=None,
                       help="virtual users: constant for --duration (default 50), or the most "
                            "VUs a --rate run may use")
    shape.add_argument("--duration", type=_duration, default=None,
                       help="how long (30s, 1m30s; default 30s); not with --stages")
    shape.add_argument("--stages", default=None, metavar="DUR:VUS,...",
                       help="ramping VUs, e.g. 10s:50,40s:50,10s:0 (ramp up, hold, ramp down)")
    shape.add_argument("--rate", type=float, default=None, metavar="N",
                       help="constant arrival rate: N journeys start each second on at most "
                            "--vus VUs (a journey with no free VU is dropped and counted)")
    parser.add_argument("--mix", default="", metavar="KEY=VALUE,...",
                        help="chaos ratios: duplicates (extra copies per event, default 0.2), "
                             "races (0.05), reorder (0.1), forged (0.05), refunds (0.05), "
                             "sellout (0.2), capacity (tight tickets per interval, 10)")
    parser.add_argument("--threshold", action="append", default=[], metavar="EXPR",
                        help="a limit, e.g. 'http-p95{endpoint=webhook} < 500ms' (repeatable; "
                             f"metrics: {', '.join(METRICS)}); defaults: "
                             f"{'; '.join(DEFAULTS).replace('%', '%%')}")
    parser.add_argument("--no-default-thresholds", action="store_true",
                        help="judge only the --threshold limits given")
    parser.add_argument("--check-every", type=_duration, default=5.0, metavar="DURATION",
                        help="check the invariants over the buyers of each interval this long "
                             "(default 5s), and once more at the end")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes sharing the VUs, one per core where one is not enough "
                             "(default 1)")
    parser.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                        help="play part I of N: the VUs v with v %% N == I-1, or 1/N of the "
                             "--rate, so N machines (CI matrix jobs) share one load; give "
                             "every shard the same --seed, and merge their summaries with "
                             "`payment-chaos merge`")
    parser.add_argument("--seed", type=int, default=None, help="seed of the journeys' mix")
    parser.add_argument("--summary", type=Path, default=Path("chaos-load.json"), metavar="PATH",
                        help="where to write the JSON summary (default chaos-load.json)")


def load_profile(args: argparse.Namespace) -> LoadProfile:
    """The profile the options describe; UsageError on a contradiction."""
    vus = args.vus
    if vus is not None and not 1 <= vus <= MAX_VUS:
        raise UsageError(f"--vus {vus} is outside 1..{MAX_VUS}")
    if args.stages is not None:
        if args.duration is not None or args.rate is not None or vus is not None:
            raise UsageError("--stages sets the VUs and the duration: drop --vus, --duration "
                             "and --rate")
        try:
            return LoadProfile(stages=parse_stages(args.stages))
        except ValueError as exc:
            raise UsageError(f"--stages: {exc}") from None
    seconds = args.duration if args.duration is not None else 30.0
    if args.rate is not None:
        if not 0 < args.rate <= 100_000:
            raise UsageError(f"--rate {args.rate:g} is outside (0, 100000] journeys per second")
        return LoadProfile.arrival_rate(args.rate, seconds, vus or 50)
    return LoadProfile.constant(vus or 50, seconds)


def cmd_load(args: argparse.Namespace) -> int:
    from chaos.cli import _check_target_secrets, _load_config
    from chaos.database import check_database_url
    from chaos.load.mix import parse_mix
    from chaos.load.runner import LoadOptions
    from chaos.load.summary import load_data, render
    from chaos.load.workers import run_workers
    from chaos.log import configure, get_logger
    from chaos.reference.bugs import parse_bugs
    from chaos.report.outputs import check_writable, write
    from chaos.run import configured_run, reference_run

    for path, option in ((args.summary, "--summary"), (args.log_json, "--log-json")):
        check_writable(path, option)
    _check_target_secrets()
    profile = load_profile(args)
    shard = args.shard or Shard()
    if shard.count > profile.max_vus:
        raise UsageError(f"--shard {shard}: {shard.count} shards of {profile.max_vus} VUs "
                         "leave some shards without a VU: use fewer shards, or more --vus")
    if not 1 <= args.workers <= min(64, max(1, profile.max_vus)):
        raise UsageError(f"--workers {args.workers} is outside 1..{min(64, profile.max_vus)} "
                         "(at most one per VU)")
    try:
        mix = parse_mix(args.mix)
        limits = thresholds(args.threshold, defaults=not args.no_default_thresholds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not limits:
        raise UsageError("--no-default-thresholds with no --threshold leaves nothing to judge: "
                         "give a --threshold")
    config = None
    if args.config is not None:
        config = _load_config(args)
    elif args.overrides:
        raise UsageError("--set overrides keys of a config: give the config with --config PATH")
    bugs = parse_bugs(args.bug)
    if args.database_url and config is None:
        check_database_url(args.database_url)
    configure(verbose=args.verbose, json_path=args.log_json)
    log = get_logger(command="load")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    target = {"kind": "reference", "bugs": sorted(bugs)} if config is None \
        else config.report_target()
    target_line = (f"reference with bugs: {', '.join(sorted(bugs))}" if bugs else
                   "reference (no bugs)") if config is None else f"config {args.config}"
    base: dict[str, Any] = {"target": target, "target_line": target_line, "seed": seed,
                            "profile": profile.to_data(), "mix": mix.to_data()}
    if not shard.whole:
        base["shard"] = str(shard)
    options = LoadOptions(profile=profile, mix=mix, seed=seed, check_every=args.check_every,
                          request_timeout=args.request_timeout, share=shard.share)
    # two kept-alive connections per VU, two more while it fires a race
    sizes = {"concurrency": profile.max_vus * 4, "request_timeout": args.request_timeout}
    start = configured_run(config, **sizes) if config is not None else reference_run(
        bugs=bugs, database_url=args.database_url, reference_port=args.reference_port,
        stripe_port=args.stripe_port, **sizes)
    log.info("load.start", target=target, seed=seed, profile=profile.describe(),
             mix=mix.to_data())
    live = Live(total=profile.seconds)
    started = time.monotonic()
    try:
        with start as runner:
            if not shard.whole:   # the shards' event ids never meet on a shared target
                runner.run_id = f"{runner.run_id}s{shard.index}"
            result = run_workers(runner, options, args.workers, on_tick=live.tick)
            database = runner.database
    except ChaosError as exc:
        live.close()
        write(args.summary, json.dumps({"kind": "load", "verdict": "error", "error": str(exc),
                                        **base}, indent=2) + "\n", "--summary")
        log.info("load.end", verdict="error", error=str(exc))
        raise
    live.close()
    data = load_data(metrics=result.metrics, seconds=result.seconds, thresholds=limits,
                     tallies=result.invariants, base=base)
    data.update(
        journeys=result.journeys, dropped_journeys=result.dropped, database=database,
        checked={"intervals": result.intervals_checked, "buyers": result.buyers_checked},
        concurrency={"peak_vus": result.peak_vus, "workers": args.workers,
                     "client_peak_in_flight": result.client_peak_in_flight,
                     "target_peak_in_flight": result.target_peak_in_flight,
                     "connections": result.connections},
        client_cpu={"seconds": round(result.cpu_seconds, 3),
                    "per_1000_requests": round(result.cpu_seconds * 1000 / max(
                        1, result.metrics.select(door=None).requests), 3)},
        wall_seconds=round(time.monotonic() - started, 3))
    write(args.summary, json.dumps(data, indent=2) + "\n", "--summary")
    log.info("load.end", verdict=data["verdict"], requests=data["http"]["all"]["requests"],
             seconds=data["seconds"])
    print(render(data, summary_path=str(args.summary)))
    return EXIT_FAIL if data["verdict"] == "fail" else EXIT_PASS


class Live:
    """The live progress line: drawn in place on a terminal at most twice a second,
    silent otherwise (CI logs stay clean)."""

    def __init__(self, *, total: float, interval: float = 0.5) -> None:
        self.total = total
        self.interval = interval
        self.enabled = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
        self._drawn = 0.0

    def tick(self, load: Any) -> None:
        from chaos.load.summary import progress_line

        now = time.monotonic()
        if not self.enabled or now - self._drawn < self.interval:
            return
        self._drawn = now
        metrics: Metrics = load.metrics
        broken = [n for n, t in load.tallies.items() if t.violations]
        sys.stdout.write("\r\x1b[2K" + progress_line(
            elapsed=load.elapsed(), total=self.total, vus=load.running_vus, metrics=metrics,
            broken=broken)[:200])
        sys.stdout.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()

