"""N shards' reports as one: what ``payment-chaos merge`` writes.

Shards (``--shard I/N`` jobs of a CI matrix, or ``--workers`` processes)
each write a whole report. The merged one reads like the report of one run
over all their work:

- a *distinct bug* (invariant and shape) is counted once, however many
  shards found it: its confirmation runs add up (``reproduced`` 4/5 and 5/5
  give 9/10), as do its failing examples; the evidence is that of the shard
  that reproduced it most; a FLAKY bug of an invariant another shard saw
  FAILED is left out, as within one run;
- counts are summed (examples, by phase, requests, failures);
- latencies are merged from the reports' HDR histograms (``histograms``), so
  the p95 is that of every request of every shard, not an average of p95s;
  the thresholds are judged again on the merged figures with each shard's
  limits;
- ``seconds`` is the longest shard's (they ran side by side), the first
  failure the earliest of any shard, the verdict ``error`` when a shard's
  was, else ``fail`` when a bug or a threshold failed.

Pure: report data in, report data out (the command reads and writes files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.invariants import INVARIANTS
from chaos.latency import Durations
from chaos.thresholds import Thresholds

#: Summed as they are in ``http`` (the rest is recomputed).
_HTTP_COUNTS = ("requests", "failed", "unanswered", "under_fault", "failed_under_fault")
#: An invariant's merged verdict: the worst of the shards' (missing counts as "pass").
_WORST = ("fail", "flaky", "unknown", "pass", "skipped")


class NotMergeable(ValueError):
    """The reports cannot be one run's: the message names why and the fix."""


def merge_reports(reports: Sequence[Mapping[str, Any]],
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """One report from the shards' ``reports`` (``names``: where each came from, for the
    ``merged`` list); NotMergeable when they are of different targets."""
    if not reports:
        raise NotMergeable("no reports to merge: give the shards' JSON reports")
    names = list(names) if names is not None else [f"#{n + 1}" for n in range(len(reports))]
    first = reports[0]
    for name, data in zip(names, reports, strict=True):
        if data.get("target") != first.get("target"):
            raise NotMergeable(f"{name} tested another target ({data.get('target')}) than "
                               f"{names[0]} ({first.get('target')}): merge the shards of one "
                               "run only")
        if not isinstance(data.get("histograms"), Mapping):   # empty: stopped before any
            raise NotMergeable(f"{name} carries no histograms (a report of an older version, "
                               "or not a run's): re-run that shard with this version")
    findings = merge_findings([f for data in reports for f in data.get("failures") or []])
    hist = {key: _merged_histogram(reports, key)
            for key in ("latencies", "judged_latencies", "skews")}
    http = _http(reports, hist["latencies"])
    verdict, error = _verdict(reports, names, findings)
    thresholds = _thresholds(reports, hist["judged_latencies"])
    if verdict == "pass" and any(t.get("verdict") == "fail" for t in thresholds.values()):
        verdict = "fail"
    merged: dict[str, Any] = {
        "verdict": verdict,
        "examples": sum(int(d.get("examples") or 0) for d in reports),
        "examples_by_phase": _summed(d.get("examples_by_phase") or {} for d in reports),
        "max_examples": sum(int(d.get("max_examples") or 0) for d in reports),
        "seed": None,
        "profile": first.get("profile"),
        "seconds": max(float(d.get("seconds") or 0) for d in reports),
        "first_failure": _first_failure(reports, names),
        "target": first.get("target"),
        "invariants": _invariants(reports, findings),
        "promises": first.get("promises") or [],
        "evidence": _evidence(findings),
        "thresholds": thresholds,
        "notes": _notes(reports),
        "failures": findings,
        "http": http,
        "concurrency": _concurrency(reports, hist["skews"]),
        "database": first.get("database") or {},
        "run_id": None,
        "histograms": {key: h.encoded() for key, h in hist.items()},
        "merged": [{"report": name, "shard": d.get("shard"), "verdict": d.get("verdict"),
                    "examples": d.get("examples"), "seed": d.get("seed"),
                    "run_id": d.get("run_id")} for name, d in zip(names, reports, strict=True)],
    }
    stopped = next((d["stopped"] for d in reports if d.get("stopped")), None)
    if stopped:
        merged["stopped"] = stopped
    if error:
        merged["error"] = error
    return merged


def merge_findings(failures: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct bugs among ``failures`` (each shard's), each once (see the module
    docstring), in the order they were first reported."""
    bugs: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failures:
        key = (str(f.get("invariant")), str(f.get("shape")))
        seen = bugs.get(key)
        if seen is None:
            bugs[key] = dict(f)
            continue
        k1, n1 = _ratio(seen.get("reproduced"))
        k2, n2 = _ratio(f.get("reproduced"))
        failing = int(seen.get("failing_examples") or 0) + int(f.get("failing_examples") or 0)
        if _better(f, seen):
            bugs[key] = dict(f)
        bug = bugs[key]
        bug["reproduced"] = f"{k1 + k2}/{n1 + n2}"
        bug["failing_examples"] = failing
        bug["status"] = "FAILED" if k1 + k2 else "FLAKY"
        bug["known"] = seen.get("known") or f.get("known")
    merged = list(bugs.values())
    failed = {f["invariant"] for f in merged if f.get("status") == "FAILED"}
    return [f for f in merged if f.get("status") == "FAILED" or f["invariant"] not in failed]


def _ratio(text: Any) -> tuple[int, int]:
    try:
        k, n = str(text).split("/")
        return int(k), int(n)
    except ValueError:
        return 0, 0


def _better(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Does ``new`` carry better evidence: FAILED over FLAKY, confirmed over a note, then
    the higher reproduction rate, then the smaller scenario?"""
    def rank(f: Mapping[str, Any]) -> tuple[int, int, float, int]:
        k, n = _ratio(f.get("reproduced"))
        return (f.get("status") == "FAILED", not f.get("note"), k / n if n else 0.0,
                -int(f.get("requests") or 0))
    return rank(new) > rank(old)


def _merged_histogram(reports: Sequence[Mapping[str, Any]], key: str) -> Durations:
    merged = Durations()
    for data in reports:
        text = data["histograms"].get(key)
        if isinstance(text, str) and text:
            merged.merge(Durations.decoded(text))
    return merged


def _summed(dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + int(value or 0)
    return total


def _http(reports: Sequence[Mapping[str, Any]], latencies: Durations) -> dict[str, Any]:
    http: dict[str, Any] = {key: sum(int((d.get("http") or {}).get(key) or 0) for d in reports)
                            for key in _HTTP_COUNTS}
    requests = http["requests"]
    http["error_rate"] = round(http["failed"] / requests, 4) if requests else 0.0
    http["avg_ms"] = round(latencies.mean() * 1000, 2)
    http["p50_ms"] = round(latencies.percentile(50) * 1000, 2)
    http["p95_ms"] = round(latencies.percentile(95) * 1000, 2)
    http["max_ms"] = round(latencies.max() * 1000, 2)
    return http


def _thresholds(reports: Sequence[Mapping[str, Any]],
                judged: Durations) -> dict[str, dict[str, Any]]:
    """The run's two thresholds judged again on the merged figures (the first shard's
    limits: the shards of one run share them)."""
    shards = [d.get("thresholds") or {} for d in reports]
    rates = [t["http-error-rate"] for t in shards if "http-error-rate" in t]
    p95s = [t["http-p95"] for t in shards if "http-p95" in t]
    if not rates or not p95s:
        return {}

    def total(key: str) -> int:
        return sum(int(t.get(key) or 0) for t in rates)

    limits = Thresholds(max_error_rate=float(rates[0]["limit"]),
                        max_p95=float(p95s[0]["limit_ms"]) / 1000)
    return limits.check(requests=total("requests"), errors=total("errors"),
                        p95=judged.percentile(95), under_fault=total("left_out_under_fault"),
                        ahead_of_payment=total("ahead_of_payment_5xx"))


def _verdict(reports: Sequence[Mapping[str, Any]], names: Sequence[str],
             findings: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    errors = [f"{name}: {d.get('error') or 'the run ended in error'}"
              for name, d in zip(names, reports, strict=True) if d.get("verdict") == "error"]
    failed = any(f.get("status") == "FAILED" for f in findings)
    if errors:
        return ("fail" if failed else "error"), "; ".join(errors)
    return ("fail" if failed else "pass"), None


def _first_failure(reports: Sequence[Mapping[str, Any]],
                   names: Sequence[str]) -> dict[str, Any] | None:
    firsts = [{**d["first_failure"], "report": name}
              for name, d in zip(names, reports, strict=True)
              if isinstance(d.get("first_failure"), Mapping)]
    return min(firsts, key=lambda f: float(f.get("seconds") or 0)) if firsts else None


def _invariants(reports: Sequence[Mapping[str, Any]],
                findings: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    names = list(dict.fromkeys([*INVARIANTS, *(n for d in reports
                                               for n in d.get("invariants") or {})]))
    broken = {f["invariant"] for f in findings if f.get("status") == "FAILED"}
    flaky = {f["invariant"] for f in findings} - broken
    out = {}
    for name in names:
        said = {str((d.get("invariants") or {}).get(name, "pass")) for d in reports}
        said.discard("fail")
        said.discard("flaky")   # a shard's FLAKY bug another shard saw FAILED is left out
        if name in broken:
            out[name] = "fail"
        elif name in flaky:
            out[name] = "flaky"
        else:
            out[name] = min(said or {"pass"}, key=_WORST.index)
    return out


def _evidence(findings: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    evidence: dict[str, list[Any]] = {}
    for f in findings:
        evidence.setdefault(str(f["invariant"]), []).extend(f.get("violations") or [])
    return evidence


def _notes(reports: Sequence[Mapping[str, Any]]) -> list[Any]:
    seen: dict[str, Any] = {}
    for d in reports:
        for note in d.get("notes") or []:
            if isinstance(note, Mapping):
                seen.setdefault(str(note.get("name")), note)
    return list(seen.values())


def _concurrency(reports: Sequence[Mapping[str, Any]], skews: Durations) -> dict[str, Any]:
    shards = [d.get("concurrency") or {} for d in reports]

    def most(key: str) -> Any:
        values = [c[key] for c in shards if c.get(key) is not None]
        return max(values) if values else None

    return {"requested": most("requested"), "peak_in_flight": most("peak_in_flight"),
            "client_peak_in_flight": most("client_peak_in_flight"),
            "start_skew_ms": round(skews.max() * 1000, 3),
            "start_skew_p50_ms": round(skews.percentile(50) * 1000, 3),
            "waves_measured": sum(int(c.get("waves_measured") or 0) for c in shards)}
