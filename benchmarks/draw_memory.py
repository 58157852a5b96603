"""Hypothesis' share of the tool's memory: the search alone, no target, no I/O.

    python benchmarks/draw_memory.py [--examples 10000] [--every 1000] [--one-run]

Runs the tool's search (``chaos.search.search``, the scenarios a run draws,
seed 1) with a target that passes every example at once, and prints this
process' RSS every ``--every`` examples. ``--one-run`` draws every example in
one Hypothesis run, as the search did before it drew in runs of
``chaos.search.DRAW_RUN``: Hypothesis keeps a tree of every choice of a run
until the run ends, so the difference between the two is its bookkeeping.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import chaos.search  # noqa: E402
from chaos.history import History  # noqa: E402
from chaos.observation import Observation  # noqa: E402
from chaos.plan import drawn_event_types  # noqa: E402
from chaos.run import ExampleResult  # noqa: E402
from strategies import Scenario, scenarios  # noqa: E402

BASELINE_EXAMPLES = 500


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--one-run", action="store_true",
                        help="draw every example in one Hypothesis run (as before)")
    args = parser.parse_args(argv)
    if args.examples < BASELINE_EXAMPLES or args.every < 1:
        parser.error(f"--examples must be at least {BASELINE_EXAMPLES} and --every positive")
    if args.one_run:
        chaos.search.DRAW_RUN = args.examples
    print(f"draw memory: {args.examples} examples in runs of {chaos.search.DRAW_RUN}")
    started = time.monotonic()
    count = 0
    at_baseline = 0.0

    def passing(scenario: Scenario) -> ExampleResult:
        nonlocal count, at_baseline
        count += 1
        if count == BASELINE_EXAMPLES:
            at_baseline = rss_mb()
        if count == BASELINE_EXAMPLES or count % args.every == 0:
            print(f"  examples {count:>6}  RSS {rss_mb():6.1f} MB  "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
        return ExampleResult(scenario, History(), Observation(history=History()), [])

    chaos.search.search(passing, scenarios(swarm=True, event_types=drawn_event_types(None)),
                        examples=args.examples, seed=1)
    end = rss_mb()
    print(f"RSS after {BASELINE_EXAMPLES} examples: {at_baseline:.1f} MB; after {count}: "
          f"{end:.1f} MB; growth {end - at_baseline:.1f} MB "
          f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
