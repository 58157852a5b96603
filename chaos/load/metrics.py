"""Load metrics as load testers read them: per endpoint and journey step, bounded in memory.

Every request of the run is folded into one :class:`Series` per (endpoint,
step): a count, failures (non-2xx or no answer), errors (what the error
rate counts: ``chaos.thresholds.is_error``) and an HDR histogram of
latencies (:class:`chaos.latency.Durations`, the search's too: 3 significant
digits, 1 us .. 1 h, whatever the run's length). HDR histograms merge
exactly, so the series of ``--workers`` processes and of ``--shard`` runs
(``payment-chaos merge``) add up to the run's.

*Checks* are k6's: named yes/no questions asked of each answer ("webhook
answered 2xx"), reported with their pass ratio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import CheckoutRef, DeliveryRef, Op
from chaos.latency import Durations
from chaos.thresholds import is_error

#: Percentiles every series reports.
PERCENTILES = (50, 90, 95, 99)


def endpoint_of(op: Op) -> str:
    """``checkout``, ``webhook`` or ``stripe`` (the fake Stripe's control API)."""
    if op.door != "target":
        return "stripe"
    return "webhook" if op.kind == "deliver" else "checkout"


def step_of(op: Op) -> str:
    """The journey step: ``checkout``, ``stripe.pay``, ``stripe.refund``, ``deliver``
    (an event's first valid copy), ``redeliver`` (a later copy), ``race`` (copies fired
    together) or ``forged`` (a mis-signed copy)."""
    ref = op.ref
    if not isinstance(ref, DeliveryRef):
        return op.kind
    if ref.signature_variant != "valid":
        return "forged"
    if ref.race:
        return "race"
    return "redeliver" if ref.copy else "deliver"


def checks_of(op: Op, step: str | None = None) -> Iterable[tuple[str, bool]]:
    """The k6-style checks one answer passes or fails (``step``: its :func:`step_of`,
    when known)."""
    if op.door != "target":
        return ()
    status = op.status or 0
    if op.kind == "checkout":
        if status == 409 and isinstance(op.ref, CheckoutRef) and op.ref.expect:
            return ()  # sold out: neither a pass nor a failure of the checkout
        return (("checkout answered 2xx with a session id", op.outcome.value == "ok"),)
    step = step or step_of(op)
    if step == "forged":
        return (("forged delivery refused with 4xx", 400 <= status < 500),)
    if step == "deliver":
        return (("webhook answered 2xx", 200 <= status < 300),)
    return (("duplicate delivery answered 2xx", 200 <= status < 300),)


@dataclass
class Series:
    """Requests of one (endpoint, step): counts and a latency histogram."""

    requests: int = 0
    failed: int = 0
    errors: int = 0
    histogram: Durations = field(default_factory=Durations)

    def add(self, op: Op) -> None:
        self.requests += 1
        self.failed += op.outcome.value != "ok"
        self.errors += is_error(op)
        self.histogram.add(op.latency)

    def merge(self, other: Series) -> None:
        self.requests += other.requests
        self.failed += other.failed
        self.errors += other.errors
        self.histogram.merge(other.histogram)

    def figures(self, seconds: float) -> dict[str, float | int]:
        """requests, req/s, failed, errors, error rate and latencies in ms."""
        h = self.histogram
        out: dict[str, float | int] = {
            "requests": self.requests, "rps": round(self.requests / seconds, 1) if seconds else 0.0,
            "failed": self.failed, "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 6) if self.requests else 0.0,
            "avg_ms": round(h.mean() * 1000, 3),
        }
        for q in PERCENTILES:
            out[f"p{q}_ms"] = round(h.percentile(q) * 1000, 3)
        out["max_ms"] = round(h.max() * 1000, 3)
        return out

    def encoded(self) -> dict[str, Any]:
        return {"requests": self.requests, "failed": self.failed, "errors": self.errors,
                "histogram": self.histogram.encoded()}

    @classmethod
    def decoded(cls, data: dict[str, Any]) -> Series:
        return cls(requests=int(data["requests"]), failed=int(data["failed"]),
                   errors=int(data["errors"]), histogram=Durations.decoded(data["histogram"]))


@dataclass
class Check:
    passes: int = 0
    fails: int = 0

    @property
    def ratio(self) -> float:
        total = self.passes + self.fails
        return self.passes / total if total else 1.0


@dataclass
class Metrics:
    """Every request of a run, folded: series by (endpoint, step), checks by name."""

    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, op: Op) -> None:
        step = step_of(op)
        key = (endpoint_of(op), step)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        series.add(op)
        for name, passed in checks_of(op, step):
            check = self.checks.setdefault(name, Check())
            if passed:
                check.passes += 1
            else:
                check.fails += 1

    def select(self, endpoint: str | None = None, step: str | None = None,
               *, door: str | None = "target") -> Series:
        """One series merged from those matching the tags (the target's by default:
        the fake Stripe's control calls are the tool's own, not the service's load)."""
        merged = Series()
        for (e, s), series in self.series.items():
            if endpoint is None and door == "target" and e == "stripe":
                continue
            if (endpoint is None or e == endpoint) and (step is None or s == step):
                merged.merge(series)
        return merged

    def merge(self, other: Metrics) -> None:
        for key, series in other.series.items():
            self.series.setdefault(key, Series()).merge(series)
        for name, check in other.checks.items():
            mine = self.checks.setdefault(name, Check())
            mine.passes += check.passes
            mine.fails += check.fails

    def check_ratio(self, name: str | None = None) -> float:
        chosen = [c for n, c in self.checks.items() if name is None or n == name]
        passes = sum(c.passes for c in chosen)
        total = passes + sum(c.fails for c in chosen)
        return passes / total if total else 1.0

    def encoded(self) -> dict[str, Any]:
        """A JSON-ready form another process can merge (``decoded``)."""
        return {"series": [{"endpoint": e, "step": s, **series.encoded()}
                           for (e, s), series in sorted(self.series.items())],
                "checks": {n: [c.passes, c.fails] for n, c in self.checks.items()}}

    @classmethod
    def decoded(cls, data: dict[str, Any]) -> Metrics:
        metrics = cls()
        for item in data["series"]:
            metrics.series[(item["endpoint"], item["step"])] = Series.decoded(item)
        for name, (passes, fails) in data["checks"].items():
            metrics.checks[name] = Check(int(passes), int(fails))
        return metrics
