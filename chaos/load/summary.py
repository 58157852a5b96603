"""The load run's results as data (the JSON summary a CI job reads) and as text.

The JSON summary (``--summary PATH``, default ``chaos-load.json``):
``kind`` ("load"), ``verdict`` (pass / fail / error), ``target``, ``seed``,
``profile`` (stages or rate), ``mix``, ``seconds``, ``journeys``,
``dropped_journeys``; ``http``: ``all`` (the target's requests), ``endpoints``
(by endpoint) and ``steps`` (by endpoint and journey step), each with
``requests``, ``rps``, ``failed``, ``errors``, ``error_rate``, ``avg_ms``,
``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``max_ms``; ``checks`` (name,
passes, fails, ratio); ``thresholds`` (each with its text, value, limit and
verdict); ``invariants`` (each: verdict, violations, intervals broken, the
first violation with its rows); ``checked`` (intervals and buyers checked);
``concurrency`` (peak VUs, in flight as the client and the target saw it,
connections opened, workers); ``client_cpu`` (CPU seconds the load itself
cost, every worker's, and per 1,000 requests); ``histograms`` (HDR histograms, base64, per
series: merge them across runs or shards).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaos.load.metrics import Metrics
from chaos.load.thresholds import Threshold

_COLUMNS = ("requests", "rps", "failed", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def load_data(*, metrics: Metrics, seconds: float, thresholds: Sequence[Threshold],
              tallies: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: ``base`` (target, seed, profile, ... as the caller knows them)
    plus every figure, threshold verdict and invariant verdict."""
    endpoints = sorted({e for e, _ in metrics.series})
    judged = [t.judge(metrics, seconds) for t in thresholds]
    invariant_data = {
        name: {"verdict": "fail" if t.violations else "pass", "violations": t.violations,
               "intervals": t.intervals, "first": t.first}
        for name, t in tallies.items()}
    broken = any(v["verdict"] == "fail" for v in invariant_data.values()) \
        or any(t["verdict"] == "fail" for t in judged)
    return {
        "kind": "load", "verdict": "fail" if broken else "pass", **base,
        "seconds": round(seconds, 3),
        "http": {
            "all": metrics.select().figures(seconds),
            "endpoints": {e: metrics.select(e).figures(seconds) for e in endpoints},
            "steps": [{"endpoint": e, "step": s, **series.figures(seconds)}
                      for (e, s), series in sorted(metrics.series.items())],
        },
        "checks": [{"name": n, "passes": c.passes, "fails": c.fails, "ratio": round(c.ratio, 6)}
                   for n, c in sorted(metrics.checks.items())],
        "thresholds": judged,
        "invariants": invariant_data,
        "histograms": metrics.encoded(),
    }


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def _value(t: dict[str, Any]) -> str:
    if t["unit"] == "ms":
        return f"{t['value']:.2f} ms"
    if t["unit"] == "ratio":
        return f"{t['value'] * 100:.2f}%"
    return f"{t['value']:g}"


def render(data: dict[str, Any], *, summary_path: str | None = None) -> str:
    """The terminal summary: a table per endpoint and step, checks, invariants,
    thresholds, the verdict."""
    lines = [f"payment-chaos load: {data['target_line']}, {data['profile']['describe']}, "
             f"seed {data['seed']}", ""]
    header = ["endpoint", "step", "reqs", "req/s", "failed", "p50", "p90", "p95", "p99", "max"]
    rows = [[s["endpoint"], s["step"], *(_number(s[c]) for c in _COLUMNS)]
            for s in data["http"]["steps"]]
    for endpoint, figures in data["http"]["endpoints"].items():
        rows.append([endpoint, "(all)", *(_number(figures[c]) for c in _COLUMNS)])
    rows.append(["target", "(all)", *(_number(data["http"]["all"][c]) for c in _COLUMNS)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    lines.append("  (latencies in ms; failed: non-2xx or no answer, including refusals "
                 "that were expected)")
    lines.append("")
    c = data["concurrency"]
    lines.append(f"  journeys ......... {data['journeys']} in {data['seconds']:.1f} s "
                 f"({data['dropped_journeys']} dropped)")
    target_saw = "?" if c["target_peak_in_flight"] is None else c["target_peak_in_flight"]
    lines.append(f"  VUs .............. {c['peak_vus']} at peak over {c['workers']} worker(s); "
                 f"in flight {c['client_peak_in_flight']} as the client saw it"
                 f"{' (the sum of the workers’ peaks)' if c['workers'] > 1 else ''}, {target_saw} as "
                 f"the target saw it; {c['connections']} connections opened")
    cpu = data.get("client_cpu")
    if cpu:
        lines.append(f"  client CPU ....... {cpu['seconds']:.2f} s, {cpu['per_1000_requests']:.3f} s "
                     "per 1,000 requests (firing, recording and checking)")
    lines.append("  checks")
    for check in data["checks"]:
        mark = "✓" if check["fails"] == 0 else "✗"
        total = check["passes"] + check["fails"]
        lines.append(f"    {mark} {check['ratio'] * 100:6.2f}%  {check['passes']} / {total}  "
                     f"{check['name']}")
    checked = data["checked"]
    lines.append(f"  invariants (checked {checked['intervals']} times over "
                 f"{checked['buyers']} buyers)")
    for name, inv in data["invariants"].items():
        if inv["verdict"] == "pass":
            lines.append(f"    PASS  {name}")
        else:
            first = (inv["first"] or {}).get("message", "")
            lines.append(f"    FAIL  {name}: {inv['violations']} violation(s) in "
                         f"{inv['intervals']} interval(s); first: {first}")
    lines.append("  thresholds")
    for t in data["thresholds"]:
        lines.append(f"    {t['verdict'].upper():4}  {t['threshold']}  value {_value(t)}")
    lines += ["", f"verdict: {data['verdict'].upper()}"]
    if summary_path:
        lines.append(f"summary: {summary_path}")
    return "\n".join(lines)


def progress_line(*, elapsed: float, total: float, vus: int, metrics: Metrics,
                  broken: Sequence[str]) -> str:
    """The live line on a terminal: time, VUs, requests and rate, failures, p95, checks."""
    everything = metrics.select()
    rate = everything.requests / elapsed if elapsed > 0 else 0.0
    failed = everything.errors / everything.requests * 100 if everything.requests else 0.0
    p95 = everything.histogram.percentile(95) * 1000
    state = f"broken: {', '.join(broken)}" if broken else "invariants hold so far"
    return (f"  {elapsed:5.1f} / {total:g} s · VUs {vus} · {everything.requests} req "
            f"({rate:.0f}/s) · errors {failed:.2f}% · p95 {p95:.1f} ms · "
            f"checks {metrics.check_ratio() * 100:.2f}% · {state}")
