"""Does steering with ``hypothesis.target`` find race-shaped scenarios sooner?

For each synthetic "race-shaped" predicate and each seed, run the scenario
search twice with the same budget (the chaos run's default of 100 examples
unless ``--examples`` says otherwise): once plain, once feeding
``strategies.targets(scenario)`` to ``hypothesis.target`` as the engine does.
Print, per predicate, in how many seeds the predicate was reached within the
budget and the median example number of the first hit.

    python tools/measure_steering.py [--examples 100] [--seeds 20]

Pure generation (no target service): it measures the strategies, not a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings, target
from hypothesis.errors import InvalidArgument

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strategies import Scenario, scenarios, targets  # noqa: E402

PREDICATES: dict[str, Callable[[Scenario], bool]] = {
    "2+ buyers race past a ticket type's capacity":
        lambda s: targets(s)["checkouts-racing-for-capacity"] >= 3,
    "3 copies of one event fired together":
        lambda s: targets(s)["copies-of-one-event-in-one-wave"] >= 3,
    "2+ redeliveries while a copy is in flight":
        lambda s: targets(s)["redeliveries-in-flight"] >= 2,
    "a wave of 10+ requests":
        lambda s: targets(s)["requests-in-one-wave"] >= 10,
    "3+ event pairs of one payment out of order":
        lambda s: targets(s)["events-out-of-order"] >= 3,
}


def first_hit(predicate: Callable[[Scenario], bool], *, steered: bool, examples: int,
              run_seed: int) -> int | None:
    """The 1-based example number where ``predicate`` first held, or None."""
    seen = 0
    hit: int | None = None

    @seed(run_seed)
    @settings(max_examples=examples, database=None, deadline=None,
              phases=(Phase.generate, Phase.target), suppress_health_check=list(HealthCheck))
    @given(scenarios())
    def search(scenario: Scenario) -> None:
        nonlocal seen, hit
        seen += 1
        if steered:
            for label, score in targets(scenario).items():
                target(score, label=label)
        if hit is None and predicate(scenario):
            hit = seen

    search()
    return hit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    if args.examples < 1 or args.seeds < 1:
        raise InvalidArgument("--examples and --seeds must be >= 1")
    started = time.perf_counter()
    print(f"budget {args.examples} examples, seeds 0..{args.seeds - 1}")
    print(f"{'predicate':46s} {'plain: found, median':>22s} {'steered: found, median':>24s}")
    for name, predicate in PREDICATES.items():
        cells = []
        for steered in (False, True):
            hits = [first_hit(predicate, steered=steered, examples=args.examples, run_seed=s)
                    for s in range(args.seeds)]
            found = [h for h in hits if h is not None]
            median = f"{statistics.median(found):.0f}" if found else "-"
            cells.append(f"{len(found):>3d}/{args.seeds}, {median:>4s}")
        print(f"{name:46s} {cells[0]:>22s} {cells[1]:>24s}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
