"""Thresholds on load metrics, written as k6 writes them, with the seed's two as defaults.

    METRIC[{TAG=VALUE,...}] OP LIMIT

- METRIC: ``http-p50``, ``http-p90``, ``http-p95``, ``http-p99``, ``http-max``,
  ``http-avg`` (latency: a LIMIT of ``500ms``, ``5s`` or plain milliseconds);
  ``http-error-rate``, ``http-failed-rate`` (a share: ``1%`` or ``0.01``);
  ``http-rps``, ``http-requests`` (numbers); ``checks`` (pass ratio, a share).
- TAGS: ``endpoint`` (``checkout``, ``webhook``, ``stripe``) and ``step``
  (``checkout``, ``deliver``, ``redeliver``, ``race``, ``forged``,
  ``stripe.pay``, ``stripe.refund``); ``checks`` takes ``name``.
- OP: ``<``, ``<=``, ``>``, ``>=``.

Example: ``http-p95{endpoint=webhook} < 500ms``. The defaults are the seed's:
``http-error-rate < 1%`` and ``http-p95 < 5s``; a threshold given on the same
metric and tags replaces its default.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.load.metrics import Metrics
from chaos.load.profile import parse_duration

LATENCY = {"http-p50": "p50_ms", "http-p90": "p90_ms", "http-p95": "p95_ms",
           "http-p99": "p99_ms", "http-max": "max_ms", "http-avg": "avg_ms"}
RATES = {"http-error-rate": "error_rate", "http-failed-rate": "failed_rate"}
COUNTS = {"http-rps": "rps", "http-requests": "requests"}
METRICS = (*LATENCY, *RATES, *COUNTS, "checks")
TAGS = {"endpoint", "step"}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_FORM = re.compile(r"^\s*([a-z0-9-]+)\s*(?:\{([^}]*)\})?\s*(<=|>=|<|>)\s*(\S+)\s*$")

DEFAULTS = ("http-error-rate < 1%", "http-p95 < 5s")


@dataclass(frozen=True)
class Threshold:
    """One limit: ``metric{tags} op limit``; ``limit`` in ms, a share or a number."""

    text: str
    metric: str
    tags: tuple[tuple[str, str], ...]
    op: str
    limit: float

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.metric, self.tags

    def value(self, metrics: Metrics, seconds: float) -> float:
        """The metric's value over the run (latency in ms, shares as fractions)."""
        tags = dict(self.tags)
        if self.metric == "checks":
            return metrics.check_ratio(tags.get("name"))
        series = metrics.select(tags.get("endpoint"), tags.get("step"))
        if self.metric == "http-failed-rate":
            return series.failed / series.requests if series.requests else 0.0
        figures = series.figures(seconds)
        column = LATENCY.get(self.metric) or RATES.get(self.metric) or COUNTS[self.metric]
        return float(figures[column])

    def judge(self, metrics: Metrics, seconds: float) -> dict[str, Any]:
        value = self.value(metrics, seconds)
        passed = _OPS[self.op](value, self.limit)
        return {"threshold": self.text, "metric": self.metric, "tags": dict(self.tags),
                "op": self.op, "limit": self.limit, "value": round(value, 6),
                "unit": "ms" if self.metric in LATENCY else
                        "ratio" if self.metric in RATES or self.metric == "checks" else "",
                "verdict": "pass" if passed else "fail"}


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold; raises ValueError that names the fix."""
    match = _FORM.match(text)
    if not match:
        raise ValueError(f"threshold {text!r} is not METRIC{{TAG=VALUE}} OP LIMIT "
                         "(e.g. 'http-p95{endpoint=webhook} < 500ms')")
    metric, tag_text, op, raw = match.groups()
    if metric not in METRICS:
        raise ValueError(f"threshold {text!r}: unknown metric {metric!r}; choose from "
                         f"{', '.join(METRICS)}")
    tags = []
    for part in filter(None, (p.strip() for p in (tag_text or "").split(","))):
        key, sep, value = (x.strip() for x in part.partition("="))
        allowed = {"name"} if metric == "checks" else TAGS
        if not sep or key not in allowed or not value:
            raise ValueError(f"threshold {text!r}: tag {part!r} must be one of "
                             f"{', '.join(sorted(allowed))}=VALUE")
        tags.append((key, value))
    return Threshold(text=" ".join(text.split()), metric=metric, tags=tuple(sorted(tags)),
                     op=op, limit=_limit(text, metric, raw))


def _limit(text: str, metric: str, raw: str) -> float:
    try:
        if metric in LATENCY:
            return float(raw) if _is_number(raw) else parse_duration(raw) * 1000
        if metric in RATES or metric == "checks":
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
            if not 0 <= value <= 1:
                raise ValueError
            return value
        return float(raw)
    except ValueError:
        want = ("a latency (500ms, 5s)" if metric in LATENCY else
                "a share (1% or 0.01)" if metric in RATES or metric == "checks" else "a number")
        raise ValueError(f"threshold {text!r}: limit {raw!r} must be {want}") from None


def _is_number(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True


def thresholds(given: Sequence[str], *, defaults: bool = True) -> list[Threshold]:
    """The run's thresholds: the seed's defaults, replaced or joined by ``given``."""
    chosen = [parse_threshold(t) for t in given]
    keys = {t.key for t in chosen}
    base = [t for t in map(parse_threshold, DEFAULTS) if t.key not in keys] if defaults else []
    return base + chosen
