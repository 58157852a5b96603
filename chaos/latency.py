"""Durations kept as a histogram: memory flat in the number of requests.

A run of hours sends millions of requests; keeping each latency would grow
the tool's memory with the run (about 35 kB per example before this). An
HDR histogram (``hdrhistogram``, the Python port of Gil Tene's HdrHistogram)
keeps counts in fixed buckets: three significant digits (a p95 of 338.3 ms
is reported within 0.1%), 1 µs to one hour, about 190 kB whatever the count.
Histograms merge (:meth:`Durations.merge`) and travel as text
(:meth:`Durations.encoded`, HdrHistogram's compressed base64 form), so runs
split across processes or machines (``--workers``, ``--shard``) are summed
exactly: the merged p95 is the p95 of every request, not an average of p95s.
The load mode's series (``chaos/load/metrics.py``) keep theirs here too.
"""

from __future__ import annotations

import base64

from hdrh.histogram import HdrHistogram

#: Recorded in microseconds, from 1 µs (0 is kept as 0) to an hour.
_UNIT = 1_000_000
_HIGHEST = 3600 * _UNIT
_DIGITS = 3


class Durations:
    """Seconds recorded into an HDR histogram; percentiles, mean and max read back."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(1, _HIGHEST, _DIGITS)

    def __len__(self) -> int:
        return int(self._histogram.get_total_count())

    def add(self, seconds: float) -> None:
        """Record one duration (clamped to 0 .. one hour)."""
        self._histogram.record_value(min(_HIGHEST, max(0, round(seconds * _UNIT))))

    def merge(self, other: Durations) -> None:
        """Add every duration ``other`` holds."""
        self._histogram.add(other._histogram)

    def encoded(self) -> str:
        """The histogram as text (base64 of HdrHistogram's compressed encoding)."""
        return base64.b64encode(self._histogram.encode()).decode()

    @classmethod
    def decoded(cls, text: str) -> Durations:
        """The histogram :meth:`encoded` wrote (ValueError when ``text`` is not one)."""
        durations = cls()
        if len(text) > 0:
            try:
                durations._histogram.decode_and_add(base64.b64decode(text))
            except Exception as exc:   # hdrh raises its own errors, or zlib's
                raise ValueError(f"not an encoded HDR histogram ({exc})") from None
        return durations

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) in seconds; 0.0 when empty."""
        if not len(self):
            return 0.0
        return float(self._histogram.get_value_at_percentile(q)) / _UNIT

    def mean(self) -> float:
        return float(self._histogram.get_mean_value()) / _UNIT if len(self) else 0.0

    def max(self) -> float:
        return float(self._histogram.get_max_value()) / _UNIT if len(self) else 0.0
