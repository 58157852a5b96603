"""N load shards' summaries as one (``payment-chaos merge`` of ``load`` summaries).

Each ``payment-chaos load --shard I/N`` played 1/N of the VUs (or of the
arrival rate) against the same target. Their summaries carry every series'
HDR histogram (``histograms``); merged, they are the histograms of one run
that sent every shard's requests, so the merged p95 is that run's within the
histogram's precision (3 significant digits), and the thresholds are judged
again on them. Counts add up, peaks of VUs, connections and in-flight
requests add up (each shard's own peak: an upper bound of the whole), the
invariants' violations and intervals add up, the first violation is the
first shard's that saw one; ``seconds`` is the longest shard's.

Pure: summary data in, summary data out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.load.metrics import Metrics
from chaos.load.summary import load_data
from chaos.load.thresholds import parse_threshold
from chaos.report.merge import NotMergeable


@dataclass
class _Tally:
    violations: int = 0
    intervals: int = 0
    first: dict[str, Any] | None = None


def merge_summaries(summaries: Sequence[Mapping[str, Any]],
                    names: Sequence[str]) -> dict[str, Any]:
    """One summary from the shards' ``summaries`` (``names``: where each came from)."""
    first = summaries[0]
    for name, data in zip(names, summaries, strict=True):
        if data.get("target") != first.get("target"):
            raise NotMergeable(f"{name} loaded another target ({data.get('target')}) than "
                               f"{names[0]}: merge the shards of one run only")
        if not isinstance(data.get("histograms"), Mapping):
            raise NotMergeable(f"{name} carries no histograms (it ended in error, or an "
                               "older version wrote it): re-run that shard")
    metrics = Metrics()
    for data in summaries:
        try:
            metrics.merge(Metrics.decoded(dict(data["histograms"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise NotMergeable(f"{names[summaries.index(data)]}: its histograms do not "
                               f"decode ({exc}): re-run that shard") from None
    try:
        limits = [parse_threshold(str(t["threshold"])) for t in first.get("thresholds") or []]
    except (KeyError, ValueError) as exc:
        raise NotMergeable(f"{names[0]}: its thresholds do not parse ({exc})") from None
    tallies: dict[str, _Tally] = {}
    for data in summaries:
        for name, inv in (data.get("invariants") or {}).items():
            tally = tallies.setdefault(name, _Tally())
            tally.violations += int(inv.get("violations") or 0)
            tally.intervals += int(inv.get("intervals") or 0)
            tally.first = tally.first or inv.get("first")
    seconds = max(float(d.get("seconds") or 0) for d in summaries)
    base = {key: first.get(key) for key in ("target", "target_line", "seed", "profile", "mix")}
    merged = load_data(metrics=metrics, seconds=seconds, thresholds=limits, tallies=tallies,
                       base=base)

    def total(*path: str) -> int:
        out = 0
        for data in summaries:
            value: Any = data
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            out += int(value or 0)
        return out

    cpu = sum(float((d.get("client_cpu") or {}).get("seconds") or 0) for d in summaries)
    peaks = [int(p) for d in summaries
             if (p := (d.get("concurrency") or {}).get("target_peak_in_flight")) is not None]
    merged.update(
        journeys=total("journeys"), dropped_journeys=total("dropped_journeys"),
        database=first.get("database"),
        checked={"intervals": total("checked", "intervals"),
                 "buyers": total("checked", "buyers")},
        concurrency={"peak_vus": total("concurrency", "peak_vus"),
                     "workers": total("concurrency", "workers"),
                     "client_peak_in_flight": total("concurrency", "client_peak_in_flight"),
                     "target_peak_in_flight": max(peaks) if peaks else None,
                     "connections": total("concurrency", "connections")},
        client_cpu={"seconds": round(cpu, 3), "per_1000_requests": round(
            cpu * 1000 / max(1, metrics.select(door=None).requests), 3)},
        wall_seconds=max(float(d.get("wall_seconds") or 0) for d in summaries),
        merged=[{"summary": name, "shard": d.get("shard"), "verdict": d.get("verdict"),
                 "requests": ((d.get("http") or {}).get("all") or {}).get("requests")}
                for name, d in zip(names, summaries, strict=True)])
    errors = [f"{n}: {d.get('error')}" for n, d in zip(names, summaries, strict=True)
              if d.get("verdict") == "error"]
    if errors:
        merged["verdict"] = "error" if merged["verdict"] == "pass" else merged["verdict"]
        merged["error"] = "; ".join(errors)
    return merged
