"""How together does a wave arrive? Start skew and the in-flight peak the
reference service itself counts, for waves of N, with the executor's
pre-connection on and off.

    python benchmarks/executor.py [--database-url URL] [--sizes 50,200,1000] [--repeat 5]

Each wave is the load wave of a run: N buyers pay, then N valid deliveries
go out together behind the barrier. Figures depend on the machine's load,
so they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import chaos.run  # noqa: E402
from chaos.executor import Executor  # noqa: E402
from chaos.run import Runner, reference_run  # noqa: E402
from strategies import busy_night  # noqa: E402


def fire(runner: Runner, n: int, preconnect: bool) -> tuple[float, int | None, float]:
    """One load wave of ``n``: (spread of send times s, service peak, p95 latency s)."""
    chaos.run.Executor = functools.partial(Executor, preconnect=preconnect)  # type: ignore[misc]
    try:
        history = runner.run_example(busy_night(n)).history
    finally:
        chaos.run.Executor = Executor  # type: ignore[misc]
    ops = [op for op in history.at_target() if op.sent]
    starts = [op.start for op in ops]
    latencies = sorted(op.latency for op in ops)
    return (max(starts) - min(starts), history.target_peak_in_flight,
            latencies[int(len(latencies) * 0.95) - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with reference_run(database_url=args.database_url, concurrency=max(sizes)) as runner:
        print(f"{'N':>5} {'pre-connect':>11} {'skew p50 ms':>12} {'skew max ms':>12} "
              f"{'service peak min..max':>22} {'p95 ms':>8}")
        for n in sizes:
            for preconnect in (True, False):
                runs = [fire(runner, n, preconnect) for _ in range(args.repeat)]
                skews = [r[0] * 1000 for r in runs]
                peaks = [r[1] or 0 for r in runs]
                p95 = statistics.median(r[2] * 1000 for r in runs)
                print(f"{n:>5} {'on' if preconnect else 'off':>11} {statistics.median(skews):>12.2f} "
                      f"{max(skews):>12.2f} {min(peaks):>13}..{max(peaks):<7} {p95:>8.1f}")


if __name__ == "__main__":
    main()
