"""Latencies as histograms: the figures a run reports, within 0.1%, in memory that
does not grow with the number of requests."""

from __future__ import annotations

import statistics
import tracemalloc

from chaos.latency import Durations


def test_percentiles_mean_and_max_within_a_tenth_of_a_percent() -> None:
    values = [0.0012 * (i % 997) + 0.0005 for i in range(20_000)]
    durations = Durations()
    for v in values:
        durations.add(v)
    assert len(durations) == len(values)
    exact = statistics.quantiles(values, n=100, method="inclusive")
    for q in (50, 95, 99):
        assert abs(durations.percentile(q) - exact[q - 1]) <= 0.001 * exact[q - 1] + 2e-6, q
    assert abs(durations.mean() - statistics.fmean(values)) <= 0.001 * statistics.fmean(values)
    assert abs(durations.max() - max(values)) <= 0.001 * max(values)


def test_empty_is_zero_and_out_of_range_is_clamped() -> None:
    durations = Durations()
    assert (durations.percentile(95), durations.mean(), durations.max(), len(durations)) == \
        (0.0, 0.0, 0.0, 0)
    durations.add(-1.0)
    durations.add(7200.0)
    assert durations.percentile(0) == 0.0 and 3599 < durations.max() <= 3601


def test_merge_adds_every_duration() -> None:
    a, b = Durations(), Durations()
    for _ in range(100):
        a.add(0.010)
        b.add(0.200)
    a.merge(b)
    assert len(a) == 200
    assert abs(a.percentile(25) - 0.010) < 1e-4 and abs(a.percentile(75) - 0.200) < 1e-3


def test_memory_does_not_grow_with_the_count() -> None:
    durations = Durations()
    for i in range(1_000):
        durations.add(i / 1000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200_000):
            durations.add((i % 5000) / 1000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(durations) == 201_000
    assert grown < 10_000, f"{grown} bytes for 200,000 more durations"   # a list: ~1.6 MB
